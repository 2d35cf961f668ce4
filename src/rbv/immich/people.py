"""Immich's people and faces, as ``immich-push`` reads and changes them.

Only these calls are used: ``GET /api/people``, ``POST /api/people`` (create a person
with a name), ``PATCH /api/people/{id}`` (name an unnamed person; ``PUT`` before
Immich v3, which deprecates it), ``GET /api/faces?id=ASSET``
and ``PUT /api/faces/{personId}`` with body ``{"id": faceId}`` (Immich's
``reassignFacesById``: the path names the *person*, the body the face). rbv never
deletes, merges or hides an Immich person, nor renames a named one:
``PUT /api/people/{id}/reassign`` moves every face of a person on an asset and
``POST /api/people/{id}/merge`` deletes the merged people, so neither is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rbv.bounds import coordinate, pixel_size
from rbv.errors import ImmichError, printable
from rbv.immich.assets import ASSET_ID
from rbv.immich.client import ImmichClient

PEOPLE_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ImmichPerson:
    id: str
    name: str  # "" for a person Immich's clustering made and nobody named
    hidden: bool = False

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ImmichPerson:
        person_id = item["id"]
        if not isinstance(person_id, str) or not ASSET_ID.fullmatch(person_id):
            raise ValueError(f"person id {printable(repr(person_id))[:80]} is not an Immich id")
        return cls(person_id, str(item.get("name") or ""), bool(item.get("isHidden")))


@dataclass(frozen=True)
class ImmichFace:
    """One face of an asset: its box in the pixels Immich reports (``image_size``,
    upright) and the person it belongs to, if any."""

    id: str
    box: tuple[float, float, float, float]
    image_size: tuple[int, int]
    person: ImmichPerson | None

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ImmichFace:
        face_id = item["id"]
        if not isinstance(face_id, str) or not ASSET_ID.fullmatch(face_id):
            raise ValueError(f"face id {printable(repr(face_id))[:80]} is not an Immich id")
        person = item.get("person")
        return cls(
            face_id,
            (coordinate(item["boundingBoxX1"], "boundingBoxX1"),
             coordinate(item["boundingBoxY1"], "boundingBoxY1"),
             coordinate(item["boundingBoxX2"], "boundingBoxX2"),
             coordinate(item["boundingBoxY2"], "boundingBoxY2")),
            (pixel_size(item["imageWidth"], "imageWidth"),
             pixel_size(item["imageHeight"], "imageHeight")),
            ImmichPerson.from_json(person) if person else None,
        )


class ImmichPeopleClient(ImmichClient):
    """:class:`ImmichClient` plus the people and face calls of ``immich-push``."""

    def people(self) -> Iterator[ImmichPerson]:
        """Every person Immich lists for the key's user, hidden ones included. (Immich
        leaves out people without faces, so one just created may be missing.)"""
        page = 1
        while True:
            body = self._json("GET", "/people", params={
                "page": page, "size": PEOPLE_PAGE_SIZE, "withHidden": "true"})
            try:
                items = body["people"]
                more = bool(body.get("hasNextPage"))
                people = [ImmichPerson.from_json(p) for p in items]
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ImmichError(f"unexpected people list from {self.url} (page {page})") \
                    from None
            yield from people
            if not more or not people:
                return
            page += 1

    def create_person(self, name: str) -> ImmichPerson:
        """A new person with ``name`` (``POST /api/people``)."""
        # Not retried: a POST whose answer was lost may have created the person, and a
        # retry would make a second one. (An empty person left so is removed by Immich's
        # own clean-up of people without faces.)
        body = self._json("POST", "/people", json={"name": name}, retry=False)
        try:
            return ImmichPerson.from_json(body)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ImmichError(f"unexpected answer creating a person on {self.url}") from None

    def asset_faces(self, asset_id: str) -> list[ImmichFace]:
        """Every face of one asset, with its person."""
        body = self._json("GET", "/faces", params={"id": asset_id})
        try:
            if not isinstance(body, list):
                raise TypeError("not a list")
            return [ImmichFace.from_json(f) for f in body]
        except KeyError as exc:
            raise ImmichError(f"malformed faces of asset {asset_id} (no {exc})") from None
        except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise ImmichError(f"malformed faces of asset {asset_id} ({exc})") from None

    def name_person(self, person_id: str, name: str) -> None:
        """Give an (unnamed) person a name (``PATCH /api/people/{id}``; ``PUT`` before v3)."""
        if not ASSET_ID.fullmatch(person_id):
            raise ImmichError(f"{printable(person_id)[:80]!r} is not an Immich id")
        self._json(self.update_method, f"/people/{person_id}", json={"name": name})

    def create_face(self, asset_id: str, person_id: str, box: tuple[int, int, int, int],
                    image_size: tuple[int, int]) -> None:
        """A new face of the asset in the person (``POST /api/faces``, Immich's "tag a
        face", since v1.127): ``box`` is x, y, width, height in pixels of the upright
        image of ``image_size``. Not retried: a POST whose answer was lost may have made
        the face, and a re-run matches it rather than making a second."""
        for value in (asset_id, person_id):
            if not ASSET_ID.fullmatch(value):
                raise ImmichError(f"{printable(value)[:80]!r} is not an Immich id")
        x, y, w, h = box
        self._json("POST", "/faces", json={
            "assetId": asset_id, "personId": person_id, "imageWidth": image_size[0],
            "imageHeight": image_size[1], "x": x, "y": y, "width": w, "height": h},
            retry=False, answer=False)

    def assign_face(self, face_id: str, person_id: str) -> None:
        """Put one face in one person (``PUT /api/faces/{personId}``, body the face)."""
        for value in (face_id, person_id):
            if not ASSET_ID.fullmatch(value):
                raise ImmichError(f"{printable(value)[:80]!r} is not an Immich id")
        self._json("PUT", f"/faces/{person_id}", json={"id": face_id})
