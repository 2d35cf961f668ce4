-- rbv schema 21: each pack's HNSW index is rebuilt to hold its vectors in half precision
-- (halfvec): minutes at a million faces (4 min 44 s at 1M × 512-d on 2 cores).
-- At 1M faces × 512-d the index was 2.7 GB, as large as the rows it leads to, and the two
-- did not fit rbv's server cache together: an incremental `rbv cluster` whose index
-- pages had left the cache read them back one search at a time. It is now 1.35 GB, and
-- its neighbours are as good (recall@30 against the exact ones 0.756, was 0.751);
-- similarities are still measured on the full vectors.
-- One transaction: interrupted, it leaves the database as it was (run it again).

DO $$
DECLARE
    p record;
    faces bigint;
BEGIN
    FOR p IN SELECT id, embedding_dim FROM model_packs ORDER BY id LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', 'face_embeddings_hnsw_pack' || p.id);
        SELECT count(*) INTO faces FROM face_embeddings WHERE pack_id = p.id;
        CONTINUE WHEN faces = 0;  -- built once its first faces are in, as for a new pack
        -- As rbv builds it (store/queries/packs.py ensure_pack_index).
        PERFORM set_config('maintenance_work_mem',
            greatest(64, least(4096, (faces * (2 * p.embedding_dim + 400) * 1.25 / 1048576)::bigint))
            || 'MB', true);
        EXECUTE format('CREATE INDEX %I ON face_embeddings USING hnsw '
                       '((embedding::halfvec(%s)) halfvec_cosine_ops) WHERE pack_id = %s',
                       'face_embeddings_hnsw_pack' || p.id, p.embedding_dim, p.id);
    END LOOP;
END $$;

ANALYZE face_embeddings;
