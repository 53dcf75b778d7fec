"""Datasets: specs, sources, caches, splits, augmentation and distribution."""
