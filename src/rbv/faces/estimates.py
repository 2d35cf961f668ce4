"""What an attribute model estimates of a face (its age and gender), and what the
estimates of a person's faces say together: plain data, without numpy (the persons
commands that show them start without it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaceEstimate:
    """What an attribute model estimates from a face: its age in years (the mean of the
    model's age distribution) and that distribution's spread (sd), the likelier gender
    and how likely (0.5–1), and which model said so (its file name and sha256)."""

    age: float
    age_spread: float
    gender: str  # 'female' | 'male'
    gender_confidence: float
    model: str
    model_sha256: str


@dataclass(frozen=True)
class EstimatedAges:
    """What the estimates of a person's faces say: over how many faces, the median
    estimated age and the youngest and oldest estimate, and how many faces read as
    each gender."""

    faces: int
    median: float
    youngest: float
    oldest: float
    female: int
    male: int

    @property
    def gender(self) -> str | None:
        """The gender most of the faces read as (None: as many one way as the other)."""
        if self.female == self.male:
            return None
        return "female" if self.female > self.male else "male"

    def as_dict(self) -> dict[str, object]:
        return {"faces": self.faces, "median_age": round(self.median, 1),
                "youngest": round(self.youngest, 1), "oldest": round(self.oldest, 1),
                "gender": self.gender, "female_faces": self.female, "male_faces": self.male}
