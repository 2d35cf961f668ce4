-- rbv schema 28: a statement that moves faces while no person has a cached sum (a full
-- `rbv cluster` drops its pack's sums before it writes) no longer joins the faces it
-- changed to log moves against sums that are not there: the log and the drop of stale
-- sums (schema 20) would both be empty. At 100k faces moved that join was 0.29 s of the
-- trigger's 0.38 s (EXPLAIN ANALYZE of a full run's UPDATE); the faces that left a
-- person are still marked for `delete_empty_persons`.

CREATE OR REPLACE FUNCTION rbv_sums_faces_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    logged bigint;
    -- the faces whose person changed, as the CTE ``c``
    changed text := 'WITH c AS (SELECT o.id, o.pack_id, o.person_id AS left_person, '
                    'n.person_id AS joined_person '
                    'FROM old_faces o JOIN new_faces n ON n.id = o.id '
                    'WHERE o.person_id IS DISTINCT FROM n.person_id) ';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM person_sums) THEN
        NULL;  -- no sum to log a move against or to drop
    ELSIF (SELECT count(*) FROM new_faces) > 50000 THEN
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
