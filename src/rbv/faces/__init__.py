"""Face engine: providers, model packs, detection, alignment, recognition, quality."""
