"""Local HTTP servers that stand in for Immich and an Immich-ML inference server."""
