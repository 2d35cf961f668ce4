"""Immich REST client and staging."""
