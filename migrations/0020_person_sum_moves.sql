-- rbv schema 20: a face that joins or leaves a person no longer drops the person's cached
-- sum (schema 14); the move is logged in `person_sum_moves` with the face's embedding, and
-- a reader adds the faces that joined and takes away those that left. A person of 500,000
-- faces that lost a few to a hand edit or a review was summed again from all its faces by
-- the next incremental `rbv cluster` (16 s at 1M faces).
-- The log stays small: a statement that changes more than 50,000 faces drops the sums it
-- makes stale, as schema 14 did, and so does a person whose moves outgrow half its faces
-- (summing its faces again is then as cheap). Deleting a sum row deletes its moves; the
-- log of a row deleted by hand, or of the whole table, goes with it.
CREATE TABLE person_sum_moves (
    person_id  uuid      NOT NULL REFERENCES person_sums (person_id) ON DELETE CASCADE,
    face_id    bigint    NOT NULL,
    sign       smallint  NOT NULL CHECK (sign IN (-1, 1)),  -- 1: joined, -1: left
    embedding  vector    -- NULL: the face had none; the reader sums the person again
);
CREATE INDEX person_sum_moves_person ON person_sum_moves (person_id);

-- Each statement is run with EXECUTE, so it is planned for the faces this UPDATE
-- changed: a statement in a PL/pgSQL body keeps the plan of its first run in the
-- session, and one made for a one-face UPDATE joins a 20,000-face one in 13 s (nested
-- loops over the transition tables).
CREATE FUNCTION rbv_sums_faces_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    logged bigint;
    -- the faces whose person changed, as the CTE ``c``
    changed text := 'WITH c AS (SELECT o.id, o.pack_id, o.person_id AS left_person, '
                    'n.person_id AS joined_person '
                    'FROM old_faces o JOIN new_faces n ON n.id = o.id '
                    'WHERE o.person_id IS DISTINCT FROM n.person_id) ';
BEGIN
    IF (SELECT count(*) FROM new_faces) > 50000 THEN
        EXECUTE changed || 'DELETE FROM person_sums s USING c '
                'WHERE s.person_id IN (c.left_person, c.joined_person)';
    ELSE
        EXECUTE changed || 'INSERT INTO person_sum_moves (person_id, face_id, sign, embedding) '
                'SELECT m.person, m.id, m.sign, e.embedding FROM ('
                '  SELECT left_person AS person, id, -1 AS sign FROM c '
                '  WHERE left_person IS NOT NULL '
                '  UNION ALL '
                '  SELECT joined_person, id, 1 FROM c WHERE joined_person IS NOT NULL'
                ') m JOIN person_sums s ON s.person_id = m.person '
                'LEFT JOIN face_embeddings e ON e.face_id = m.id';
        GET DIAGNOSTICS logged = ROW_COUNT;
        IF logged > 0 THEN
            -- A person whose log outgrows half its faces is summed from them again.
            EXECUTE changed || 'DELETE FROM person_sums s USING ('
                    '  SELECT person_id, count(*) AS moves FROM person_sum_moves '
                    '  WHERE person_id IN (SELECT left_person FROM c '
                    '                      UNION SELECT joined_person FROM c) '
                    '  GROUP BY person_id) m '
                    'WHERE s.person_id = m.person_id AND 2 * m.moves > s.face_count';
        END IF;
    END IF;
    EXECUTE changed || 'INSERT INTO faces_left_persons (pack_id) '
            'SELECT DISTINCT pack_id FROM c WHERE left_person IS NOT NULL '
            'ON CONFLICT DO NOTHING';
    RETURN NULL;
END $$;

DROP TRIGGER person_sums_on_update ON face_detections;
DROP FUNCTION rbv_forget_sums_updated();
CREATE TRIGGER person_sums_on_update AFTER UPDATE ON face_detections
    REFERENCING OLD TABLE AS old_faces NEW TABLE AS new_faces
    FOR EACH STATEMENT EXECUTE FUNCTION rbv_sums_faces_moved();
