-- rbv schema 1: catalogue, faces, persons, constraints, provenance.
-- Data flows one way: images -> face_detections (+ embeddings) -> persons.

CREATE EXTENSION IF NOT EXISTS vector;

-- A model pack: one detector + one recognizer. Faces of different packs are never
-- compared, so every face and person row names its pack. The embedding width comes from
-- the pack (512 for buffalo_l, 128 for SFace); per-pack HNSW indexes are created by rbv
-- when a pack is first registered (CREATE INDEX ... ((embedding::vector(dim))) WHERE pack_id = N).
CREATE TABLE model_packs (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL,
    fingerprint   text        NOT NULL UNIQUE,   -- sha256 over the files' hashes
    files         jsonb       NOT NULL,          -- {"det_500m.onnx": "<sha256>", ...}
    embedding_dim integer     NOT NULL CHECK (embedding_dim > 0),
    settings      jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- calibrated thresholds etc.
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per unique content (sha256). Catalogue status covers reading the file
-- (hashing, EXIF, decoding the header); a failure is retried on the next run.
CREATE TABLE images (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256       text        NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes   bigint      NOT NULL CHECK (size_bytes >= 0),
    width        integer,                        -- after EXIF orientation
    height       integer,
    format       text,                           -- decided by content: JPEG, PNG, HEIF, ...
    taken_at     timestamp,                      -- EXIF DateTimeOriginal (camera local time)
    gps_lat      double precision,
    gps_lon      double precision,
    gps_alt      double precision,
    camera_make  text,
    camera_model text,
    orientation  smallint,                       -- EXIF orientation 1..8
    exif         jsonb,
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'ok', 'failed')),
    error        text,
    attempts     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_taken_at ON images (taken_at);
CREATE INDEX images_status ON images (status) WHERE status <> 'ok';

-- Every on-disk path of an image; byte-identical files are aliases of one image.
CREATE TABLE image_paths (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id   bigint      NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    path       text        NOT NULL UNIQUE,
    gallery    text,                             -- the gallery folder it was found in, if any
    mtime      timestamptz,
    size_bytes bigint,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX image_paths_image ON image_paths (image_id);

-- Detection + embedding work per (image, pack): the queue that embed workers claim with
-- FOR UPDATE SKIP LOCKED. status 'done' means faces (possibly zero) are stored.
CREATE TABLE face_scans (
    image_id    bigint      NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    pack_id     integer     NOT NULL REFERENCES model_packs (id) ON DELETE CASCADE,
    status      text        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts    integer     NOT NULL DEFAULT 0,
    error       text,
    worker      text,                            -- host:pid of the claimant
    claimed_at  timestamptz,
    finished_at timestamptz,
    face_count  integer,
    PRIMARY KEY (image_id, pack_id)
);
CREATE INDEX face_scans_todo ON face_scans (pack_id, status) WHERE status <> 'done';

-- A person: a group of faces of one pack. ids are stable UUIDs across runs.
CREATE TABLE persons (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    pack_id     integer     REFERENCES model_packs (id) ON DELETE CASCADE,
    hidden      boolean     NOT NULL DEFAULT false,
    merged_into uuid        REFERENCES persons (id) ON DELETE SET NULL,
    source      text        NOT NULL DEFAULT 'cluster',  -- cluster | manual | import
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A person's name; deleted with the person (DELETE FROM persons clears names too).
CREATE TABLE person_names (
    person_id  uuid        PRIMARY KEY REFERENCES persons (id) ON DELETE CASCADE,
    name       text        NOT NULL CHECK (length(trim(name)) > 0),
    named_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX person_names_name ON person_names (lower(name));

CREATE TABLE face_detections (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id    bigint      NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    pack_id     integer     NOT NULL REFERENCES model_packs (id) ON DELETE CASCADE,
    -- box and landmarks in original-image pixels, after EXIF orientation
    x1          real        NOT NULL,
    y1          real        NOT NULL,
    x2          real        NOT NULL,
    y2          real        NOT NULL,
    landmarks   real[],                          -- 5 points: x0,y0,...,x4,y4
    det_score   real        NOT NULL,
    face_short  real GENERATED ALWAYS AS (least(x2 - x1, y2 - y1)) STORED,
    blur        real,                            -- Laplacian variance of the aligned crop
    embedding   vector      NOT NULL,            -- L2-normalised; width = the pack's
    person_id   uuid        REFERENCES persons (id) ON DELETE SET NULL,
    -- how person_id was set: cluster | match | manual. Manual assignments are never
    -- undone by an automatic re-cluster.
    assigned_by text CHECK (assigned_by IN ('cluster', 'match', 'manual')),
    assigned_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX face_detections_image ON face_detections (image_id);
CREATE INDEX face_detections_person ON face_detections (person_id);
CREATE INDEX face_detections_unassigned ON face_detections (pack_id) WHERE person_id IS NULL;

-- Manual constraints. Pairs are stored with face_a < face_b.
CREATE TABLE must_links (
    face_a     bigint      NOT NULL REFERENCES face_detections (id) ON DELETE CASCADE,
    face_b     bigint      NOT NULL REFERENCES face_detections (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (face_a, face_b),
    CHECK (face_a < face_b)
);
CREATE TABLE cannot_links (
    face_a     bigint      NOT NULL REFERENCES face_detections (id) ON DELETE CASCADE,
    face_b     bigint      NOT NULL REFERENCES face_detections (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (face_a, face_b),
    CHECK (face_a < face_b)
);
-- "Not this person": the face may never be assigned to that person again.
CREATE TABLE person_rejections (
    face_id    bigint      NOT NULL REFERENCES face_detections (id) ON DELETE CASCADE,
    person_id  uuid        NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (face_id, person_id)
);

-- Provenance: one row per command run that writes.
CREATE TABLE runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command     text        NOT NULL,
    parameters  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status      text        NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted')),
    counts      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    host        text,
    pid         integer,
    rbv_version text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX runs_command ON runs (command, started_at DESC);
