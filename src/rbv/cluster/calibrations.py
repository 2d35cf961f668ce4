"""Which clustering setting a pack uses, and where it came from.

Precedence, for each method:

* what the user passed (``--threshold`` / ``--budget``);
* the pack's stored calibration (``rbv eval --calibrate --store``);
* rbv's built-in calibration for the pack's recognizer, found by the recognizer file's
  sha256 (so a user who never calibrates gets a measured setting);
* the generic fallback: for ``evidence``, an impostor model estimated from the library's
  own random face pairs (see :func:`rbv.cluster.evidence.random_pair_similarities`); for
  the similarity-threshold methods, 0.65 (InsightFace buffalo_l's customary value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rbv.cluster.defaults import DEFAULT_BUDGET, DEFAULT_THRESHOLD, ImpostorModel, Method
from rbv.errors import ConfigError, Remedy


@dataclass(frozen=True)
class KnownRecognizer:
    """A recognizer rbv has calibration for."""

    name: str
    impostor: ImpostorModel
    thresholds: Mapping[str, float]  # similarity per threshold method
    source: str
    by_age: bool = False
    """Faces with estimated ages are compared centred by age (:mod:`rbv.cluster.ages`) by
    default: measured to help with this recognizer."""


KNOWN_RECOGNIZERS: dict[str, KnownRecognizer] = {
    # ../shared/models/scrfd_sface/face_recognition_sface_2021dec_int8bq_ort.onnx
    "539e38d2d486e60b0609b5d3e1205d7b5ad32ddae3a2b78b4a5665c77e304ac1": KnownRecognizer(
        "SFace 2021dec int8 (OpenCV Zoo, 128-d)",
        ImpostorModel(mu=0.10, sigma=0.087, tau=0.02),
        {"connected": 0.52, "agglomerative": 0.44, "hdbscan": 0.56, "immich-baseline": 0.50},
        "measured by rbv: impostor mean/spread of labelled different-person pairs of "
        "data/lfw_many (0.099 / 0.087) and data/faces (0.119 / 0.084); thresholds are "
        "each method's best on lfw_many",
        by_age=True,  # faces 0.986 -> 0.993, lfw_many 0.988 -> 0.989, family 0.681 -> 0.725
    ),
}
"""Built-in calibrations by recognizer sha256. InsightFace buffalo_l (w600k_r50.onnx,
sha256 4c06341c…619e43) has none: no measurement of its impostor distribution could be
made offline here, so its libraries use the estimate from their own faces."""

CROWDING_RULE = 2
"""Version of evidence linkage's crowding rule (:mod:`rbv.cluster.crowding`), part of
the setting: persons made before it are reported as made with another setting (1: one
cap of 2 spreads in both passes; 2: 3 in the second pass)."""

DEFAULT_METHOD = Method.evidence
"""Measured on both labelled sets (docs/clustering.md): the only method
whose one setting reaches pairwise and BCubed F ≥ 0.98 on both."""
BASELINE_THRESHOLD = 0.5
"""Immich's own default for its face grouping (maxDistance 0.5 = similarity 0.5)."""


@dataclass(frozen=True)
class ClusterSetting:
    """Everything that decides how faces are grouped, and where it came from."""

    method: Method
    threshold: float | None = None  # similarity, for the threshold methods
    budget: float | None = None  # evidence: impostor face pairs the library may accept
    impostor: ImpostorModel | None = None  # evidence: None until estimated
    source: str = ""
    impostor_source: str = ""
    remedies: tuple[Remedy, ...] = ()  # what would give a better setting (calibrating)

    @property
    def needs_estimate(self) -> bool:
        """Evidence linkage without an impostor model yet (to be estimated)."""
        return self.method is Method.evidence and self.impostor is None

    def with_impostor(self, model: ImpostorModel, source: str) -> ClusterSetting:
        return replace(self, impostor=model, impostor_source=source)

    def key(self) -> dict[str, Any]:
        """What decides the grouping (compared between runs to notice a change)."""
        if self.method is Method.evidence:
            model = self.impostor.as_dict() if self.impostor else None
            return {"method": self.method.value, "budget": self.budget, "impostor": model,
                    "crowding": CROWDING_RULE}
        return {"method": self.method.value, "threshold": self.threshold}

    def describe(self, n_faces: int | None = None) -> str:
        """The setting with the impostor model's parameters (``--verbose``, ``--json``)."""
        if self.method is not Method.evidence:
            return f"{self.method.value} at similarity {self.threshold:g} ({self.source})"
        text = f"evidence, budget {self.budget:g} ({self.source})"
        if self.impostor is not None:
            m = self.impostor
            text += (f"; impostor model mu {m.mu:.3f}, sigma {m.sigma:.3f}, tau {m.tau:.3f} "
                     f"({self.impostor_source})")
            if n_faces:
                pair = m.pair_similarity(n_faces, self.budget or DEFAULT_BUDGET)
                text += f"; two lone faces need similarity {pair:.2f} at {n_faces:,} faces"
        return text

    def plain(self, n_faces: int | None = None) -> str:
        """What the grouping does, in words a person reads without the model's internals
        (issue 62 #12: the first run opened with "impostor model mu 0.100, sigma …")."""
        if self.method is not Method.evidence:
            return self.describe()
        text = (f"evidence: faces grouped so that at most {self.budget:g} pairs of different "
                f"people may join in the whole library ({self.source})")
        if self.impostor is not None and n_faces:
            pair = self.impostor.pair_similarity(n_faces, self.budget or DEFAULT_BUDGET)
            text += f"; two lone faces join at similarity {pair:.2f} or more"
        return text


def known_recognizer(pack_files: Mapping[str, str]) -> KnownRecognizer | None:
    """The built-in calibration of the pack's recognizer, if rbv has one."""
    for digest in pack_files.values():
        if digest in KNOWN_RECOGNIZERS:
            return KNOWN_RECOGNIZERS[digest]
    return None


def resolve_setting(stored: Mapping[str, Any], pack_files: Mapping[str, str],
                    method: Method | None = None, *, threshold: float | None = None,
                    budget: float | None = None) -> ClusterSetting:
    """The setting for ``method`` (default :data:`DEFAULT_METHOD`, or connected components
    when only a ``threshold`` is given) from the user's values,
    the pack's stored calibration (``stored``: the pack's settings), the built-in one for
    the recognizer among ``pack_files`` (name → sha256), or the fallbacks."""
    if method is None:  # `--threshold X` alone keeps its old meaning: connected components
        method = Method.connected if threshold is not None else DEFAULT_METHOD
    known = known_recognizer(pack_files)
    if method is Method.evidence:
        if threshold is not None:
            raise ConfigError("a similarity threshold is for the connected, agglomerative "
                              "and hdbscan methods; evidence linkage takes a budget",
                              setting="threshold")
        if budget is not None and budget <= 0:
            raise ConfigError(f"the budget must be above 0 (got {budget})", setting="budget")
        chosen, source = ((budget, "--budget") if budget is not None
                          else (float(stored.get("budget") or DEFAULT_BUDGET),
                                "the pack's stored budget" if stored.get("budget")
                                else "rbv's default budget"))
        impostor = stored.get("impostor") or {}
        if impostor.get("mu") is not None:
            model = ImpostorModel(float(impostor["mu"]), float(impostor["sigma"]),
                                  float(impostor["tau"]))
            return ClusterSetting(method, None, chosen, model, source,
                                  str(impostor.get("source") or "the pack's stored model"))
        if known is not None:
            return ClusterSetting(method, None, chosen, known.impostor, source,
                                  f"built in for {known.name}")
        return ClusterSetting(method, None, chosen, None, source)
    if budget is not None:
        raise ConfigError("a budget is for the evidence method; the others take a similarity "
                          "threshold", setting="budget")
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"the threshold must be between 0 and 1 (got {threshold})",
                              setting="threshold")
        return ClusterSetting(method, threshold, source="--threshold")
    saved = (stored.get("thresholds") or {}).get(method.value)
    if saved is not None:
        return ClusterSetting(method, float(saved), source="the pack's calibrated value")
    if known is not None and method.value in known.thresholds:
        return ClusterSetting(method, known.thresholds[method.value],
                              source=f"built in for {known.name}")
    return ClusterSetting(method, DEFAULT_THRESHOLD, source="buffalo_l's customary value",
                          remedies=(Remedy("calibrate"),))


def key_in_words(key: Mapping[str, Any]) -> str:
    """A setting's :meth:`ClusterSetting.key`, as a run stored it, in words."""
    if key.get("method") == Method.evidence.value:
        rule = key.get("crowding")
        crowding = ("" if rule == CROWDING_RULE else ", before crowding" if not rule
                    else f", crowding rule {rule} (now {CROWDING_RULE})")
        budget = key.get("budget")
        shown = f"{budget:g}" if isinstance(budget, (int, float)) else budget
        return f"evidence, budget {shown}{crowding}"
    return f"{key.get('method')} at similarity {key.get('threshold')}"
