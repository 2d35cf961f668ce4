"""Stand-ins for outside servers (Immich, Immich machine-learning) used by rbv's tests and
benchmarks; never used by commands."""
