-- rbv schema 19: a photo whose pixels changed (a crop, a retouch, another file copied
-- over it) keeps its old content, faces and decisions until the new content's faces are
-- found, so each old face's person, hand-placement, rejections and same/different links
-- can go to the new face that is the same face. Embeddings are per model pack and a
-- pack may scan the new content in a later `rbv embed`, so the old image stays (with no
-- path) while any of its faces waits for its pack; each pack's carry deletes that pack's
-- old faces and scan in the transaction that writes what they carried, and the old
-- image goes with its last face. An interrupted run loses nothing: the row is still
-- here, and the next index or embed carries it.
CREATE TABLE image_supersessions (
    old_image_id bigint      PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    new_image_id bigint      NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    since        timestamptz NOT NULL DEFAULT now(),
    CHECK (old_image_id <> new_image_id)
);
CREATE INDEX image_supersessions_new ON image_supersessions (new_image_id);
