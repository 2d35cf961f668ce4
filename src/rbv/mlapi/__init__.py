"""Client for a remote inference server that speaks Immich's machine-learning protocol."""
