-- rbv schema 17: the backups `export-xmp --write-into-files` made (PHOTO.EXT_original,
-- exiftool's name), with the size and sha256 each was verified to hold before its photo
-- was rewritten. A backup found on disk is trusted only when it matches this record or
-- the photo's catalogued content (images.sha256): a truncated or foreign one never is.
-- The path is the file name's bytes (names need not be UTF-8).
CREATE TABLE photo_originals (
    path        bytea        PRIMARY KEY,
    size_bytes  bigint       NOT NULL,
    sha256      text         NOT NULL,
    written_at  timestamptz  NOT NULL DEFAULT now()
);
