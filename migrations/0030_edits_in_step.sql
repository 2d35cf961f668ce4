-- rbv schema 30: an edit takes time in step with the rows it changes, not with the
-- library: the faces' statement triggers (1, 2) and the foreign keys that had no index
-- on their referencing side (3).
--
-- 1. A face that loses its person loses its assigned_by (schema 15) through an UPDATE of
--    those faces by id. Joined to the transition table, it was planned from statistics
--    that saw few unassigned faces and a transition table of 5 rows: a nested loop that
--    read the whole transition table once per face, so a statement's time grew with the
--    square of its faces. Deleting a person of 1,986 faces in psql (the faces set NULL by
--    the foreign key) took 2.0 s, unassigning 3,000 faces 5 s and 10,000 faces 50 s;
--    60,000 had not ended after 13 minutes, and the README's reset of a library
--    (`UPDATE face_detections SET person_id = NULL;`) would take hours at 100k. The faces'
--    ids now go as one array, the UPDATE planned for it: 0.23 s for the person of 1,986
--    faces, 7.3 s for the reset of 100k (in rolled-back transactions).
--
-- 2. A statement that moves faces drops the cached sums (schema 20) its moves would
--    outgrow before it logs any move, not after. A merge moves every face of one person
--    into another: both persons' logs outgrow half their faces, so each face was logged
--    twice with its embedding, and then both rows were deleted and their logs with
--    them. For a merge of 765 faces into 829 (100k faces) that was 85-100 ms of the
--    UPDATE's 130-150 ms, the tail of `rbv serve`'s answers; now about 50 ms in all.
--    The faces whose person changed are read from the transition tables once, into
--    arrays, not once in each statement here. The rows and logs left are those schema
--    20 left: a person's row goes when its logged moves, old and new, would be more
--    than half its faces; the others get the moves logged. A statement of more than
--    50,000 faces drops its persons' rows through a semi-join on the persons, no longer
--    a join on either of two columns (`IN (c.left_person, c.joined_person)`, which no
--    hash join can take). `scripts/bench/bench_face_triggers.py` times both versions.

-- 3. Deleting a face looks for persons whose cover it is, and deleting a person for
--    persons merged into it: with no index, each a scan of every person, per row
--    deleted. 3,000 faces deleted from a library of 100k faces and 3,402 persons spent
--    1,017 ms of 1,360 ms finding covers (EXPLAIN ANALYZE); deleting every person,
--    311 ms finding persons merged into them. Links and rejections, which grow with
--    every review answer, are looked up the same way by their second face and person.

CREATE INDEX persons_cover_face ON persons (cover_face_id) WHERE cover_face_id IS NOT NULL;
CREATE INDEX persons_merged_into ON persons (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX must_links_face_b ON must_links (face_b);
CREATE INDEX cannot_links_face_b ON cannot_links (face_b);
CREATE INDEX person_rejections_person ON person_rejections (person_id);

CREATE OR REPLACE FUNCTION rbv_unassigned_is_undecided() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    undecided bigint[] := ARRAY(SELECT id FROM new_faces
                                WHERE person_id IS NULL AND assigned_by IS NOT NULL);
BEGIN
    IF cardinality(undecided) > 0 THEN  -- else nothing to do (and no UPDATE to trigger)
        EXECUTE 'UPDATE face_detections SET assigned_by = NULL '
                'WHERE id = ANY ($1) AND person_id IS NULL' USING undecided;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION rbv_sums_faces_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- the faces whose person changed: ids, packs, the persons they left and joined
    ids bigint[];
    packs integer[];
    lefts uuid[];
    joins uuid[];
    c text := 'unnest($1, $2, $3, $4) AS c(id, pack_id, left_person, joined_person)';
    touched text := '(SELECT unnest($3) UNION SELECT unnest($4))';
BEGIN
    EXECUTE 'SELECT array_agg(o.id), array_agg(o.pack_id), array_agg(o.person_id), '
            '       array_agg(n.person_id) '
            'FROM old_faces o JOIN new_faces n ON n.id = o.id '
            'WHERE o.person_id IS DISTINCT FROM n.person_id' INTO ids, packs, lefts, joins;
    IF ids IS NULL THEN
        RETURN NULL;  -- no face changed person
    END IF;
    IF NOT EXISTS (SELECT 1 FROM person_sums) THEN
        NULL;  -- no sum to log a move against or to drop
    ELSIF (SELECT count(*) FROM new_faces) > 50000 THEN
        EXECUTE 'DELETE FROM person_sums s WHERE s.person_id IN ' || touched
            USING ids, packs, lefts, joins;
    ELSE
        -- A person whose log would outgrow half its faces is summed from them again.
        EXECUTE 'DELETE FROM person_sums s USING ('
                '  SELECT person, count(*) AS moves FROM ('
                '    SELECT left_person AS person FROM ' || c || ' WHERE left_person IS NOT NULL '
                '    UNION ALL '
                '    SELECT joined_person FROM ' || c || ' WHERE joined_person IS NOT NULL '
                '    UNION ALL '
                '    SELECT l.person_id FROM person_sum_moves l '
                '    WHERE l.person_id IN ' || touched ||
                '  ) a GROUP BY person) m '
                'WHERE s.person_id = m.person AND 2 * m.moves > s.face_count'
            USING ids, packs, lefts, joins;
        EXECUTE 'INSERT INTO person_sum_moves (person_id, face_id, sign, embedding) '
                'SELECT m.person, m.id, m.sign, e.embedding FROM ('
                '  SELECT left_person AS person, id, -1 AS sign FROM ' || c ||
                '  WHERE left_person IS NOT NULL '
                '  UNION ALL '
                '  SELECT joined_person, id, 1 FROM ' || c || ' WHERE joined_person IS NOT NULL'
                ') m JOIN person_sums s ON s.person_id = m.person '
                'LEFT JOIN face_embeddings e ON e.face_id = m.id'
            USING ids, packs, lefts, joins;
    END IF;
    INSERT INTO faces_left_persons (pack_id)
        SELECT DISTINCT p FROM unnest(packs, lefts) AS x(p, l) WHERE l IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
