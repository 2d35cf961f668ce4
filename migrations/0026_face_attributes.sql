-- rbv schema 26: an estimated age and gender for every face (issue 64, part 1), made
-- by an attribute model (`faceres_age_gender.onnx`: a pack part, RBV_ATTRIBUTE_MODEL or
-- --attribute-model) at `rbv index`, or later by `rbv enrich`. One row per face; the
-- model's file name and sha256 say which model made it. A face's row goes with it
-- when a photo's edited content takes its faces (the carry), and with it when the face
-- is deleted.
CREATE TABLE face_attributes (
    face_id      bigint  PRIMARY KEY REFERENCES face_detections (id) ON DELETE CASCADE,
    model        text    NOT NULL,   -- the attribute model's file name
    model_sha256 text    NOT NULL,
    age          real    NOT NULL CHECK (age >= 0 AND age <= 120), -- expected years
    age_spread   real    NOT NULL CHECK (age_spread >= 0),   -- sd of the age distribution
    gender       text    NOT NULL CHECK (gender IN ('female', 'male')),
    gender_confidence real NOT NULL CHECK (gender_confidence BETWEEN 0.5 AND 1),
    computed_at  timestamptz NOT NULL DEFAULT now()
);
