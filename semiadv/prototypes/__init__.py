"""Gender prototypes: the average aligned faces, and their per-example mixes."""
