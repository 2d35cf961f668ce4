"""Keeping the library: find, catalogue, detect and embed photos (``index``, ``embed``),
enrich faces, report duplicates, prune what left the disk, and the ``stats`` overview."""
