-- rbv schema 2: files that could not even be read (permission denied, vanished, I/O
-- errors) have no content hash, so they cannot be rows of `images`; they are kept here
-- by path, with their reason and attempt count, and retried on every index run. Files
-- that were read but are not usable images (truncated, corrupt, too many pixels) are
-- rows of `images` with status 'failed'.
CREATE TABLE catalogue_failures (
    path       text        PRIMARY KEY,
    error      text        NOT NULL,
    attempts   integer     NOT NULL DEFAULT 1,
    size_bytes bigint,
    mtime      timestamptz,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

-- The claim query of `embed` picks the next rows of a pack in image order.
CREATE INDEX face_scans_claim ON face_scans (pack_id, image_id) WHERE status <> 'done';
