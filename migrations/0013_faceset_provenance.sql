-- rbv schema 13: where a faceset came from. `rbv refine` builds facesets from all of a
-- pack's faces (discovered_from NULL); `rbv discover FOLDER` adds new ones from the faces
-- of one folder of mixed photos, and records that folder (as given, with \xNN for bytes
-- that are not UTF-8). A later refine that finds the set again keeps its number and this
-- mark.
ALTER TABLE facesets ADD COLUMN discovered_from text;
