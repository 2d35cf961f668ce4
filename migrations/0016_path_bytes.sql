-- rbv schema 16: a path is its bytes. Linux file names are bytes, not text: a name that
-- is not UTF-8 (a Latin-1 `caf\xe9.jpg` from an old disk or a FAT copy) cannot be
-- PostgreSQL text. Each path keeps its exact bytes in `path_bytes`, the identity rbv
-- looks it up by; `path` stays the text to read and query (the same string for a UTF-8
-- name; `\xNN` for each byte that is not UTF-8). A row inserted by hand with only
-- `path` gets its bytes from it.
CREATE FUNCTION path_bytes_from_path() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.path_bytes IS NULL THEN
        NEW.path_bytes := convert_to(NEW.path, 'UTF8');
    END IF;
    RETURN NEW;
END $$;

ALTER TABLE image_paths ADD COLUMN path_bytes bytea;
UPDATE image_paths SET path_bytes = convert_to(path, 'UTF8');
ALTER TABLE image_paths ALTER COLUMN path_bytes SET NOT NULL;
ALTER TABLE image_paths ADD CONSTRAINT image_paths_path_bytes_key UNIQUE (path_bytes);
ALTER TABLE image_paths DROP CONSTRAINT image_paths_path_key;
CREATE INDEX image_paths_path ON image_paths (path);
CREATE TRIGGER image_paths_path_bytes BEFORE INSERT ON image_paths
    FOR EACH ROW EXECUTE FUNCTION path_bytes_from_path();

ALTER TABLE catalogue_failures ADD COLUMN path_bytes bytea;
UPDATE catalogue_failures SET path_bytes = convert_to(path, 'UTF8');
ALTER TABLE catalogue_failures ALTER COLUMN path_bytes SET NOT NULL;
ALTER TABLE catalogue_failures DROP CONSTRAINT catalogue_failures_pkey;
ALTER TABLE catalogue_failures ADD PRIMARY KEY (path_bytes);
CREATE TRIGGER catalogue_failures_path_bytes BEFORE INSERT ON catalogue_failures
    FOR EACH ROW EXECUTE FUNCTION path_bytes_from_path();
