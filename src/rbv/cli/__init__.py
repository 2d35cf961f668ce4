"""The command-line layer: one small module per command; parse, call core, print."""
