-- rbv schema 14: the sum of each large person's face embeddings, so that an incremental
-- `rbv cluster` weighs new faces against a known person without reading all its faces
-- (a person of 2,000 faces is one row here). A cache: `rbv cluster` fills it; any change
-- of which faces a person holds (by rbv, or by hand in psql: UPDATE, DELETE, TRUNCATE)
-- deletes the rows it makes stale, in the same statement, and the next run recomputes
-- them from the faces. Deleting every row is always safe.
-- Beside it, `faces_left_persons` marks the packs where some face has left a person since
-- the last check for emptied persons, so that a nightly `rbv cluster` looks for them
-- only when one may exist (the check reads every face).
CREATE TABLE person_sums (
    person_id   uuid     PRIMARY KEY REFERENCES persons (id) ON DELETE CASCADE,
    face_count  integer  NOT NULL,
    total       bytea    NOT NULL  -- float64 little-endian, the pack's embedding width
);

CREATE TABLE faces_left_persons (
    pack_id     integer  PRIMARY KEY REFERENCES model_packs (id) ON DELETE CASCADE
);

CREATE FUNCTION rbv_forget_sums_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM person_sums s USING (
        SELECT o.person_id AS person FROM old_faces o JOIN new_faces n ON n.id = o.id
        WHERE o.person_id IS DISTINCT FROM n.person_id
        UNION
        SELECT n.person_id FROM old_faces o JOIN new_faces n ON n.id = o.id
        WHERE o.person_id IS DISTINCT FROM n.person_id
    ) changed
    WHERE s.person_id = changed.person;
    INSERT INTO faces_left_persons (pack_id)
        SELECT DISTINCT o.pack_id FROM old_faces o JOIN new_faces n ON n.id = o.id
        WHERE o.person_id IS NOT NULL AND o.person_id IS DISTINCT FROM n.person_id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION rbv_forget_sums_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM person_sums WHERE person_id IN (SELECT person_id FROM old_faces);
    INSERT INTO faces_left_persons (pack_id)
        SELECT DISTINCT pack_id FROM old_faces WHERE person_id IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION rbv_forget_sums_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM person_sums WHERE person_id IN (SELECT person_id FROM new_faces);
    RETURN NULL;
END $$;

CREATE FUNCTION rbv_forget_all_sums() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM person_sums;
    INSERT INTO faces_left_persons (pack_id) SELECT id FROM model_packs ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER person_sums_on_update AFTER UPDATE ON face_detections
    REFERENCING OLD TABLE AS old_faces NEW TABLE AS new_faces
    FOR EACH STATEMENT EXECUTE FUNCTION rbv_forget_sums_updated();
CREATE TRIGGER person_sums_on_delete AFTER DELETE ON face_detections
    REFERENCING OLD TABLE AS old_faces
    FOR EACH STATEMENT EXECUTE FUNCTION rbv_forget_sums_deleted();
CREATE TRIGGER person_sums_on_insert AFTER INSERT ON face_detections
    REFERENCING NEW TABLE AS new_faces
    FOR EACH STATEMENT EXECUTE FUNCTION rbv_forget_sums_inserted();
CREATE TRIGGER person_sums_on_truncate AFTER TRUNCATE ON face_detections
    FOR EACH STATEMENT EXECUTE FUNCTION rbv_forget_all_sums();
