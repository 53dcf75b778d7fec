"""Datasets: specs, sources, labels, caches, splits, augmentation and distribution."""
