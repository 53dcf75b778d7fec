"""The labelled picture of the three prototypes that is written beside their `.npz`."""

from __future__ import annotations

import numpy as np

from semiadv.prototypes.average import Prototypes

# The figure's layout, in pixels: panels at least FIGURE_MIN_PANEL wide (prototypes are
# 16-64 px: too small to look at), a label band above them, margins around.
FIGURE_MIN_PANEL = 128
FIGURE_MARGIN = 8
FIGURE_LABEL_HEIGHT = 28


def figure_panels(image_size: int) -> tuple[int, list[tuple[int, int]]]:
    """(the upscaled panel side, [(top, left) of the male, neutral and female panels])."""
    side = image_size * -(-FIGURE_MIN_PANEL // image_size)  # A whole multiple: nearest.
    top = FIGURE_MARGIN + FIGURE_LABEL_HEIGHT
    return side, [(top, FIGURE_MARGIN + k * (side + FIGURE_MARGIN)) for k in range(3)]


def prototype_figure(prototypes: Prototypes) -> np.ndarray:
    """A labelled picture of the three prototypes: uint8 RGB [H, W, 3].

    Each prototype is upscaled by a whole factor (nearest: its real pixels, not smoothed) to
    at least FIGURE_MIN_PANEL pixels, with "male", "neutral" and "female" above it and how
    it was made (faces averaged, the neutral mix's male weight).
    """
    import cv2

    size = prototypes.male.shape[0]
    side, corners = figure_panels(size)
    height = corners[0][0] + side + FIGURE_MARGIN
    width = corners[2][1] + side + FIGURE_MARGIN
    figure = np.full((height, width, 3), 255, np.uint8)
    males, females = prototypes.counts
    labels = (f"male ({males} faces)", f"neutral ({prototypes.male_weight:.0%} male)",
              f"female ({females} faces)")
    for image, (top, left), label in zip(
            (prototypes.male, prototypes.neutral, prototypes.female), corners, labels):
        pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        factor = side // size
        figure[top:top + side, left:left + side] = pixels.repeat(factor, 0).repeat(factor, 1)
        scale = 0.4
        (text_width, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = left + max((side - text_width) // 2, 0)
        cv2.putText(figure, label, (x, top - 10), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    1, cv2.LINE_AA)
    return figure
