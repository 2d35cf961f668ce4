-- rbv schema 12: paths whose file is gone. `rbv index` marks a catalogued path missing
-- when it walked the path's folder and the file was not there; the image and its faces
-- stay until `rbv prune` (a file that comes back is un-marked). A path whose content is
-- still at another path is a move: its row is dropped, the image is untouched.
ALTER TABLE image_paths ADD COLUMN missing_since timestamptz;
CREATE INDEX image_paths_missing ON image_paths (image_id) WHERE missing_since IS NOT NULL;
