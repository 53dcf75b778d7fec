"""Prototypes: the average aligned faces per gender (and per age group and race), and their
per-example mixes."""
