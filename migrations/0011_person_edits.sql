-- rbv schema 11: the persons edit log, so every manual edit can be listed and undone.
-- An edit (`rbv persons name|merge|split|move|not-this-person|hide|unhide`,
-- `rbv faces same|different`, `rbv persons undo`) is one row of person_edits; every row
-- it inserted, updated or deleted in the tables persons edits touch is recorded in
-- person_edit_rows, before and after, as JSON. `rbv persons undo` writes the "before"
-- images back, newest first.
--
-- The rows are recorded by triggers, and only inside an edit's transaction (rbv sets
-- the transaction-local setting rbv.edit_id there): cascades and later code paths are
-- recorded without each edit listing what it touched, and `rbv cluster` and imports
-- (which never set it) pay one cheap WHEN test per row and write nothing here.

CREATE TABLE person_edits (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command    text        NOT NULL,             -- "persons merge", "faces same", "persons undo"
    summary    text        NOT NULL DEFAULT '',  -- what it did, in words
    pack_id    integer     REFERENCES model_packs (id) ON DELETE CASCADE,
    run_id     bigint      REFERENCES runs (id) ON DELETE SET NULL,
    undoes     bigint[],                         -- for an undo: the edits it reverted
    undone_by  bigint      REFERENCES person_edits (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE person_edit_rows (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- order of the changes
    edit_id    bigint NOT NULL REFERENCES person_edits (id) ON DELETE CASCADE,
    table_name text   NOT NULL,
    row_key    jsonb  NOT NULL,                  -- the primary key, e.g. {"id": 12}
    before     jsonb,                            -- NULL: the edit inserted the row
    after      jsonb                             -- NULL: the edit deleted the row
);
CREATE INDEX person_edit_rows_edit ON person_edit_rows (edit_id, seq);
CREATE INDEX person_edit_rows_key ON person_edit_rows (table_name, row_key);

-- TG_ARGV[0]: the key columns (comma-separated); TG_ARGV[1], if given: the only other
-- columns recorded.
CREATE FUNCTION rbv_record_edit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    key_cols text[] := string_to_array(TG_ARGV[0], ',');
    kept     text[];
    old_row  jsonb;
    new_row  jsonb;
    row_key  jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    IF TG_NARGS > 1 THEN
        kept := key_cols || string_to_array(TG_ARGV[1], ',');
        IF old_row IS NOT NULL THEN
            SELECT jsonb_object_agg(k, old_row -> k) INTO old_row FROM unnest(kept) k;
        END IF;
        IF new_row IS NOT NULL THEN
            SELECT jsonb_object_agg(k, new_row -> k) INTO new_row FROM unnest(kept) k;
        END IF;
    END IF;
    IF old_row IS NOT DISTINCT FROM new_row THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_object_agg(k, coalesce(new_row, old_row) -> k) INTO row_key
    FROM unnest(key_cols) k;
    INSERT INTO person_edit_rows (edit_id, table_name, row_key, before, after)
    VALUES (current_setting('rbv.edit_id')::bigint, TG_TABLE_NAME, row_key, old_row, new_row);
    RETURN NULL;
END $$;

CREATE TRIGGER persons_edit_log AFTER INSERT OR UPDATE OR DELETE ON persons
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_edit_row('id');
CREATE TRIGGER person_names_edit_log AFTER INSERT OR UPDATE OR DELETE ON person_names
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_edit_row('person_id');
CREATE TRIGGER person_rejections_edit_log AFTER INSERT OR UPDATE OR DELETE
    ON person_rejections
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_edit_row('face_id,person_id');
CREATE TRIGGER must_links_edit_log AFTER INSERT OR UPDATE OR DELETE ON must_links
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_edit_row('face_a,face_b');
CREATE TRIGGER cannot_links_edit_log AFTER INSERT OR UPDATE OR DELETE ON cannot_links
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_edit_row('face_a,face_b');

-- Faces are many (a merge may move 100k): their own function builds the JSON of the
-- assignment columns directly, about twice as fast as the generic one above.
CREATE FUNCTION rbv_record_face_edit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.person_id, OLD.assigned_by, OLD.assigned_at)
       IS NOT DISTINCT FROM (NEW.person_id, NEW.assigned_by, NEW.assigned_at) THEN
        RETURN NULL;
    END IF;
    INSERT INTO person_edit_rows (edit_id, table_name, row_key, before, after)
    VALUES (current_setting('rbv.edit_id')::bigint, 'face_detections',
            jsonb_build_object('id', NEW.id),
            jsonb_build_object('id', OLD.id, 'person_id', OLD.person_id,
                               'assigned_by', OLD.assigned_by, 'assigned_at', OLD.assigned_at),
            jsonb_build_object('id', NEW.id, 'person_id', NEW.person_id,
                               'assigned_by', NEW.assigned_by, 'assigned_at', NEW.assigned_at));
    RETURN NULL;
END $$;

CREATE TRIGGER face_detections_edit_log
    AFTER UPDATE OF person_id, assigned_by, assigned_at ON face_detections
    FOR EACH ROW WHEN (current_setting('rbv.edit_id', true) <> '')
    EXECUTE FUNCTION rbv_record_face_edit();
