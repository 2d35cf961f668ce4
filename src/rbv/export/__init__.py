"""Dedup report, export-swap, contact sheets."""
