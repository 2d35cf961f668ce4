"""rbv's work going out and coming back in: XMP regions, folders as persons, the static
review site, face-swap bundles (``discover``, ``export-swap``), and Immich (staging its
library in, pushing people out)."""
