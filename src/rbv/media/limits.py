"""Limits on what rbv reads, defined once (no heavy imports: the CLI and the settings
read them at start-up)."""

DEFAULT_MAX_IMAGE_PIXELS = 200_000_000
"""Decompression-bomb guard (width × height); ``RBV_MAX_IMAGE_PIXELS`` overrides it."""
