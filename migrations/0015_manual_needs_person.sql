-- rbv schema 15: "how a face was assigned" (assigned_by) only means something while the
-- face has a person. The README's reset (`UPDATE face_detections SET person_id = NULL;
-- DELETE FROM persons;`) used to leave assigned_by = 'manual' on faces with no person:
-- clustering treated them as hand-placed anchors of no person, never assigned them, and
-- counted them as clustered. Now a face that loses its person (by SQL, by a deleted
-- person's ON DELETE SET NULL, or by rbv) loses its assigned_by in the same statement,
-- so the next `rbv cluster` places it like any new face. A manual decision lives in its
-- person (and in person_rejections / must_links / cannot_links, which a reset keeps).
-- The WHEN test runs per updated row in C and fires only for faces being unassigned.

CREATE FUNCTION rbv_unassigned_is_undecided() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.assigned_by := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER face_detections_unassigned_is_undecided
    BEFORE UPDATE OF person_id, assigned_by ON face_detections
    FOR EACH ROW WHEN (NEW.person_id IS NULL AND NEW.assigned_by IS NOT NULL)
    EXECUTE FUNCTION rbv_unassigned_is_undecided();

-- Faces stranded by an earlier reset.
UPDATE face_detections SET assigned_by = NULL
WHERE person_id IS NULL AND assigned_by IS NOT NULL;
