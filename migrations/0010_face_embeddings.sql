-- rbv schema 10: embeddings move out of face_detections into their own table.
-- Changing who a face belongs to (person_id) wrote a whole new row version, and with it a
-- new entry in the pack's HNSW index (the vector was in the same row): 100k person ids
-- took 5.5 min to write and left dead index entries that slowed matching until VACUUM.
-- Now an assignment rewrites a narrow row and never touches the vector index.
-- face_detections keeps person_id, so the SQL resets in the README work unchanged.
-- One transaction: interrupted, it leaves the database as it was (run it again).

CREATE TABLE face_embeddings (
    face_id   bigint  PRIMARY KEY REFERENCES face_detections (id) ON DELETE CASCADE,
    pack_id   integer NOT NULL REFERENCES model_packs (id) ON DELETE CASCADE,
    embedding vector  NOT NULL               -- L2-normalised; width = the pack's
);
-- pgvector's type defaults to EXTERNAL storage: a 512-d vector (2 KB) went to the TOAST
-- table, one extra index lookup per face read. MAIN keeps it in the row (moved out only
-- if a row could not fit a page, ~2,000 dimensions).
ALTER TABLE face_embeddings ALTER COLUMN embedding SET STORAGE MAIN;

INSERT INTO face_embeddings (face_id, pack_id, embedding)
SELECT id, pack_id, embedding FROM face_detections ORDER BY id;

-- Also drops the per-pack HNSW indexes face_detections_hnsw_pack<N>.
ALTER TABLE face_detections DROP COLUMN embedding;

-- The per-pack HNSW indexes, built now that the faces are in, with enough memory to
-- hold the graph (rbv builds them the same way: store/queries/packs.py ensure_pack_index).
DO $$
DECLARE
    p record;
    faces bigint;
BEGIN
    FOR p IN SELECT id, embedding_dim FROM model_packs ORDER BY id LOOP
        SELECT count(*) INTO faces FROM face_embeddings WHERE pack_id = p.id;
        CONTINUE WHEN faces = 0;
        PERFORM set_config('maintenance_work_mem',
            greatest(64, least(4096, (faces * (4 * p.embedding_dim + 400) * 1.25 / 1048576)::bigint))
            || 'MB', true);
        EXECUTE format('CREATE INDEX %I ON face_embeddings USING hnsw '
                       '((embedding::vector(%s)) vector_cosine_ops) WHERE pack_id = %s',
                       'face_embeddings_hnsw_pack' || p.id, p.embedding_dim, p.id);
    END LOOP;
END $$;

ANALYZE face_embeddings;
