-- rbv schema 29: the persons edit log records the faces an edit moved once per statement,
-- from the statement's transition tables, instead of once per face from a row trigger.
-- A merge marks every face of the kept person manual and moves every face of the other:
-- each face was a PL/pgSQL call and a one-row INSERT (schema 11), the largest part of a
-- merge of big persons and the tail of `rbv serve`'s answers. The rows logged are the
-- same (one per face whose person, assigned_by or assigned_at changed, before and
-- after), in the same order between statements; `rbv persons undo` reads them as before.
--
-- The old and new faces are the transition tables the statement triggers of schemas 15
-- and 20 already collect. The INSERT runs with EXECUTE so it is planned for the faces
-- this statement changed (see schema 20). Outside an edit (every `rbv cluster`, import
-- and index) the WHEN test runs once per statement, not once per face.

DROP TRIGGER face_detections_edit_log ON face_detections;
DROP FUNCTION rbv_record_face_edit();

CREATE FUNCTION rbv_record_face_edits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'INSERT INTO person_edit_rows (edit_id, table_name, row_key, before, after) '
            'SELECT $1, ''face_detections'', jsonb_build_object(''id'', n.id), '
            '       jsonb_build_object(''id'', o.id, ''person_id'', o.person_id, '
            '                          ''assigned_by'', o.assigned_by, '
            '                          ''assigned_at'', o.assigned_at), '
            '       jsonb_build_object(''id'', n.id, ''person_id'', n.person_id, '
            '                          ''assigned_by'', n.assigned_by, '
            '                          ''assigned_at'', n.assigned_at) '
            'FROM old_faces o JOIN new_faces n ON n.id = o.id '
            'WHERE (o.person_id, o.assigned_by, o.assigned_at) '
            '      IS DISTINCT FROM (n.person_id, n.assigned_by, n.assigned_at) '
            'ORDER BY n.id'
    USING current_setting('rbv.edit_id')::bigint;
    RETURN NULL;
END $$;

-- Statement triggers of one event fire in name order: this one before
-- face_detections_unassigned_is_undecided, whose own UPDATE is then logged after the
-- statement that caused it, as the row trigger's rows were.
CREATE TRIGGER face_detections_edit_log AFTER UPDATE ON face_detections
    REFERENCING OLD TABLE AS old_faces NEW TABLE AS new_faces
    FOR EACH STATEMENT WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_face_edits();
