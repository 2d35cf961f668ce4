"""Immich REST client: paging assets, reading faces, downloading originals, people and
their names (the pipelines that use it are in ``jobs/exchange/``)."""
