"""Client for a remote inference server speaking the Immich machine-learning protocol."""
