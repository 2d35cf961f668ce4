-- rbv schema 18: a photo is its image data. `images.image_hash` is a hash of the image
-- data with the metadata left out (rbv.media.image_data: JPEG without APPn/COM, PNG's
-- image chunks, WebP's bitstream chunks, the decoded pixels of other formats), so a
-- file whose tags were edited (by digiKam, exiftool, rbv's own --write-into-files) is
-- recognised as the same photo and keeps its faces. NULL until `rbv index` has read the
-- file once since this upgrade. `image_paths.sha256` is the sha256 of the bytes last
-- catalogued at that path (an image's paths may hold different bytes of the same image
-- data); rbv checks it before writing beside or into the photo.
ALTER TABLE images ADD COLUMN image_hash text;
CREATE INDEX images_image_hash ON images (image_hash);
ALTER TABLE image_paths ADD COLUMN sha256 text;
UPDATE image_paths p SET sha256 = i.sha256 FROM images i WHERE i.id = p.image_id;
