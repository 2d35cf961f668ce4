"""What faces held, said before they are dropped (their photo now shows other image
data, and they were not the same face as one found in it): nothing the user decided
goes without a line."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import psycopg


def decisions_on_faces(conn: psycopg.Connection, face_ids: Sequence[int],
                       carried: Collection[int] = ()) -> list[tuple[int, str]]:
    """(face id, what it held) for each of the faces that is drawn by hand (but those
    ``carried``: drawn again in the new content), in a named person, placed by hand,
    rejected from a person, linked `same`/`different`, marked not a face, or its
    person's cover face (`rbv persons cover`)."""
    rows = conn.execute(
        """
        SELECT f.id, f.drawn IS NOT NULL, n.name, f.assigned_by = 'manual',
               (SELECT array_agg(coalesce(rn.name, r.person_id::text) ORDER BY 1)
                FROM person_rejections r LEFT JOIN person_names rn
                  ON rn.person_id = r.person_id WHERE r.face_id = f.id),
               (SELECT array_agg(CASE WHEN l.face_a = f.id THEN l.face_b ELSE l.face_a END
                                 ORDER BY 1)
                FROM must_links l WHERE f.id IN (l.face_a, l.face_b)),
               (SELECT array_agg(CASE WHEN l.face_a = f.id THEN l.face_b ELSE l.face_a END
                                 ORDER BY 1)
                FROM cannot_links l WHERE f.id IN (l.face_a, l.face_b)),
               (SELECT array_agg(coalesce(cn.name, c.id::text) ORDER BY 1)
                FROM persons c LEFT JOIN person_names cn ON cn.person_id = c.id
                WHERE c.cover_face_id = f.id AND c.id = f.person_id),
               EXISTS (SELECT 1 FROM not_faces m WHERE m.face_id = f.id)
        FROM face_detections f LEFT JOIN person_names n ON n.person_id = f.person_id
        WHERE f.id = ANY(%s) ORDER BY f.id
        """,
        (list(face_ids),),
    ).fetchall()
    out = []
    for face_id, drawn, name, manual, rejected, same, different, cover, marked in rows:
        held = ["a face drawn by hand"] if drawn and int(face_id) not in carried else []
        held += ["marked not a face"] if marked else []
        if name is not None:
            held.append(f"{'placed by hand in' if manual else 'in'} {name!r}")
        elif manual:
            held.append("placed by hand in an unnamed person")
        held += [f"rejected from {r!r}" for r in rejected or []]
        held += [f"linked 'same' with face {o}" for o in same or []]
        held += [f"linked 'different' with face {o}" for o in different or []]
        held += [f"the cover face of {c!r}" for c in cover or []]
        if held:
            out.append((int(face_id), ", ".join(held)))
    return out
