-- rbv schema 5: per-face quality (enrich), perceptual image hashes (dedup), facesets
-- with stable numbers (refine) and the persons' era splits.

-- Quality inputs of one face. `method` says what produced the pose and symmetry:
-- '5pt' (geometry of the detector's 5 landmarks), '3d68' (InsightFace 1k3d68.onnx);
-- `landmarks_106` / `landmarks_68` are filled only where the pack has those models.
CREATE TABLE face_quality (
    face_id       bigint      PRIMARY KEY REFERENCES face_detections (id) ON DELETE CASCADE,
    pack_id       integer     NOT NULL REFERENCES model_packs (id) ON DELETE CASCADE,
    method        text        NOT NULL CHECK (method IN ('5pt', '3d68')),
    yaw           real,                     -- degrees, + = face turned to its left
    pitch         real,                     -- degrees, + = looking down (coarse from 5pt)
    roll          real,                     -- degrees, in-plane tilt of the eye line
    frontality    real        NOT NULL,     -- 0..1, 1 = looking straight at the camera
    symmetry      real        NOT NULL,     -- 0..1, left/right landmark symmetry
    sharpness     real,                     -- 0..1 from the Laplacian variance (blur)
    face_short    real        NOT NULL,     -- short edge of the box, original pixels
    landmarks_106 real[],                   -- x0,y0,... from 2d106det.onnx
    landmarks_68  real[],                   -- x0,y0,z0,... from 1k3d68.onnx
    computed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX face_quality_pack ON face_quality (pack_id);

-- A 64-bit perceptual hash (DCT pHash) of each image's pixels, for visual duplicates.
CREATE TABLE image_hashes (
    image_id    bigint      PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    phash       bigint      NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);

-- A faceset: a quality-gated group of faces of one identity, written by `rbv refine`.
-- `number` (faceset_NNN) never changes and is never reused within a pack; a faceset
-- that a later run no longer finds is kept with active = false. `person_id` is the
-- person that holds most of its faces (its name names the faceset).
CREATE TABLE facesets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pack_id     integer     NOT NULL REFERENCES model_packs (id) ON DELETE CASCADE,
    number      integer     NOT NULL CHECK (number > 0),
    person_id   uuid        REFERENCES persons (id) ON DELETE SET NULL,
    active      boolean     NOT NULL DEFAULT true,
    run_id      bigint      REFERENCES runs (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pack_id, number)
);

CREATE TABLE faceset_faces (
    faceset_id bigint NOT NULL REFERENCES facesets (id) ON DELETE CASCADE,
    face_id    bigint NOT NULL REFERENCES face_detections (id) ON DELETE CASCADE,
    PRIMARY KEY (faceset_id, face_id)
);
CREATE INDEX faceset_faces_face ON faceset_faces (face_id);
