"""Discovery (galleries, chunks, roots, globs), decoding, EXIF and hashing."""
