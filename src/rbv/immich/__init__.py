"""Immich REST client and staging of an Immich library into a folder rbv indexes."""
