"""Applying an export to photos: the threaded folder job and the Beam pipeline."""
