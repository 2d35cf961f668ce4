-- rbv schema 15: "how a face was assigned" (assigned_by) only means something while the
-- face has a person. The README's reset (`UPDATE face_detections SET person_id = NULL;
-- DELETE FROM persons;`) used to leave assigned_by = 'manual' on faces with no person:
-- clustering took them for hand-placed anchors of no person, never assigned them, and
-- counted them as clustered. Now a face that loses its person (by SQL, by a deleted
-- person's ON DELETE SET NULL, or by rbv) loses its assigned_by before the statement
-- ends, so the next `rbv cluster` places it like any new face. A manual decision lives
-- in its person (and in person_rejections / must_links / cannot_links).
--
-- A statement trigger over the transition table 0014's trigger already collects: a
-- BEFORE ROW trigger (even one whose WHEN is false) fetched every updated row again,
-- ~20% on a 300k-row cluster write; this one scans the new rows once (not measurable).

CREATE FUNCTION rbv_unassigned_is_undecided() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_faces WHERE person_id IS NULL AND assigned_by IS NOT NULL)
    THEN
        UPDATE face_detections f SET assigned_by = NULL
        FROM new_faces n
        WHERE f.id = n.id AND n.person_id IS NULL AND n.assigned_by IS NOT NULL
          AND f.person_id IS NULL;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER face_detections_unassigned_is_undecided AFTER UPDATE ON face_detections
    REFERENCING NEW TABLE AS new_faces
    FOR EACH STATEMENT EXECUTE FUNCTION rbv_unassigned_is_undecided();

-- Faces stranded by an earlier reset.
UPDATE face_detections SET assigned_by = NULL
WHERE person_id IS NULL AND assigned_by IS NOT NULL;
