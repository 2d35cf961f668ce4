-- rbv schema 4: CLIP image embeddings returned by a remote inference server (--ml-uri).
-- One row per image and CLIP model; the width comes from the model (512 for
-- ViT-B-32, 768 for ViT-L-14, ...), so the column has no fixed width, as for faces.
CREATE TABLE clip_embeddings (
    image_id   bigint      NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    model      text        NOT NULL CHECK (length(model) > 0),
    embedding  vector      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, model)
);
CREATE INDEX clip_embeddings_model ON clip_embeddings (model);
