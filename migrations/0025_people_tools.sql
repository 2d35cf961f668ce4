-- rbv schema 25: the people tools (issue 51): a face drawn by hand, "not a face", a
-- person's birthday and cover face. Each is a logged edit (`rbv persons history`,
-- `rbv persons undo`), so each lives in a table the edit log records.

-- A face drawn by hand (`rbv faces add PHOTO --box`, or a box drawn in `rbv serve`):
-- NULL for a face the detector found; otherwise how its landmarks were placed: by the
-- detector run inside the box ('detector'), or from the box itself ('box').
ALTER TABLE face_detections ADD COLUMN drawn text CHECK (drawn IN ('detector', 'box'));

-- A face row made inside an edit (a face drawn by hand) is logged, so undo deletes it.
CREATE FUNCTION rbv_record_face_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO person_edit_rows (edit_id, table_name, row_key, before, after)
    VALUES (current_setting('rbv.edit_id')::bigint, 'face_detections',
            jsonb_build_object('id', NEW.id), NULL,
            jsonb_build_object('id', NEW.id, 'person_id', NEW.person_id,
                               'assigned_by', NEW.assigned_by, 'assigned_at', NEW.assigned_at));
    RETURN NULL;
END $$;

CREATE TRIGGER face_detections_insert_log AFTER INSERT ON face_detections
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_face_insert();

-- "Not a face" (`rbv faces not-a-face`): a detection that is a poster, a statue, a
-- pattern. It leaves its person and every clustering, and export-xmp, immich-push,
-- refine and export-swap skip it; a pixel edit's carry gives the mark to the same
-- detection in the new content.
CREATE TABLE not_faces (
    face_id    bigint      PRIMARY KEY REFERENCES face_detections (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER not_faces_edit_log AFTER INSERT OR UPDATE OR DELETE ON not_faces
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_edit_row('face_id');

-- A person's birthday (`rbv persons born`), for the age at each photo, and the face
-- chosen to show the person (`rbv persons cover`; NULL: the best face, as before).
ALTER TABLE persons ADD COLUMN born date;
ALTER TABLE persons ADD COLUMN cover_face_id bigint
    REFERENCES face_detections (id) ON DELETE SET NULL;
