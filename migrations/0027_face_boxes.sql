-- rbv schema 27: a face's box moved or resized by hand (`rbv faces box`, the photo page
-- of `rbv serve`), a logged edit like every other decision. The face keeps its id, its
-- person and every decision about it; its box, landmarks, score and blur are those of
-- the box the user set, and it is embedded again there. Its `drawn` mark (schema 25)
-- says the box is the user's from then on, so no automatic run replaces it (a pixel
-- edit's carry treats it as a face drawn by hand).
--
-- Undo writes the old box and embedding back: the face row's box columns are logged
-- under the view `face_boxes` (the face row's other columns are not the edit log's:
-- schema 11 logs its person only), and the embeddings (schema 10) as whole rows.

CREATE VIEW face_boxes AS
    SELECT id, x1, y1, x2, y2, landmarks, det_score, blur, drawn FROM face_detections;

CREATE FUNCTION rbv_record_face_box() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.x1, OLD.y1, OLD.x2, OLD.y2, OLD.landmarks, OLD.det_score, OLD.blur, OLD.drawn)
       IS NOT DISTINCT FROM
       (NEW.x1, NEW.y1, NEW.x2, NEW.y2, NEW.landmarks, NEW.det_score, NEW.blur, NEW.drawn) THEN
        RETURN NULL;
    END IF;
    INSERT INTO person_edit_rows (edit_id, table_name, row_key, before, after)
    VALUES (current_setting('rbv.edit_id')::bigint, 'face_boxes',
            jsonb_build_object('id', NEW.id),
            jsonb_build_object('id', OLD.id, 'x1', OLD.x1, 'y1', OLD.y1, 'x2', OLD.x2,
                               'y2', OLD.y2, 'landmarks', OLD.landmarks,
                               'det_score', OLD.det_score, 'blur', OLD.blur,
                               'drawn', OLD.drawn),
            jsonb_build_object('id', NEW.id, 'x1', NEW.x1, 'y1', NEW.y1, 'x2', NEW.x2,
                               'y2', NEW.y2, 'landmarks', NEW.landmarks,
                               'det_score', NEW.det_score, 'blur', NEW.blur,
                               'drawn', NEW.drawn));
    RETURN NULL;
END $$;

CREATE TRIGGER face_boxes_edit_log
    AFTER UPDATE OF x1, y1, x2, y2, landmarks, det_score, blur, drawn ON face_detections
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_face_box();

CREATE TRIGGER face_embeddings_edit_log AFTER INSERT OR UPDATE OR DELETE ON face_embeddings
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_edit_row('face_id');

-- A face embedded again changes its person's sum (schema 14, 20): the cached sum goes,
-- and the next `rbv cluster` sums the person from its faces again.
CREATE FUNCTION rbv_forget_sums_embedded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM person_sums s USING new_embeddings n
    JOIN face_detections f ON f.id = n.face_id
    WHERE s.person_id = f.person_id;
    RETURN NULL;
END $$;

CREATE TRIGGER person_sums_on_embedding AFTER UPDATE ON face_embeddings
    REFERENCING NEW TABLE AS new_embeddings
    FOR EACH STATEMENT EXECUTE FUNCTION rbv_forget_sums_embedded();
