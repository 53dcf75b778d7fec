"""Exporting a trained SAN and finding an export again."""
