-- Which Immich asset each staged photo came from, and what `rbv immich-push` has done on
-- that server. The link is the content hash: immich-stage knows an asset's sha256 as
-- soon as it downloads it, before (or without) indexing, and `images.sha256` is unique.
-- `server` is the URL as rbv shows it (never with a user:password part).
CREATE TABLE immich_assets (
    server     text        NOT NULL,
    asset_id   text        NOT NULL,
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    user_label text        NOT NULL,                 -- immich-stage's --user
    staged_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, asset_id)
);
CREATE INDEX immich_assets_sha256 ON immich_assets (sha256);

-- The Immich person rbv uses for a name on a server (found by name or created by rbv),
-- so a person created just before an interruption is reused, not created twice
-- (Immich does not list a person that has no faces yet).
CREATE TABLE immich_people (
    server           text        NOT NULL,
    name             text        NOT NULL,
    immich_person_id text        NOT NULL,
    created_by_rbv   boolean     NOT NULL DEFAULT false,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, name)
);

-- Assets immich-push finished: `signature` sums up what was pushed (rbv's named faces of
-- the photo and the matching setting). A re-run skips an asset whose signature is
-- unchanged without asking the server.
CREATE TABLE immich_pushes (
    server    text        NOT NULL,
    asset_id  text        NOT NULL,
    signature text        NOT NULL,
    assigned  integer     NOT NULL DEFAULT 0,
    conflicts integer     NOT NULL DEFAULT 0,
    pushed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, asset_id),
    FOREIGN KEY (server, asset_id) REFERENCES immich_assets (server, asset_id) ON DELETE CASCADE
);
