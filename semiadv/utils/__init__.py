"""Helpers every part of the package shares: image I/O, atomic writes, pools, colour."""
