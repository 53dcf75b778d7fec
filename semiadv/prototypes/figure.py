"""The labelled picture of the prototypes that is written beside their `.npz`.

The first row shows the male, neutral and female prototypes; each attribute with prototypes
per value (`Prototypes.by_attribute`) adds a row of its values' mean faces, each labelled with
its value and how many faces it averages. Values without faces are left out.
"""

from __future__ import annotations

import numpy as np

from semiadv.prototypes.average import Prototypes

# The figure's layout, in pixels: panels at least FIGURE_MIN_PANEL wide (prototypes are
# 16-64 px: too small to look at), a label band above them, margins around.
FIGURE_MIN_PANEL = 128
FIGURE_MARGIN = 8
FIGURE_LABEL_HEIGHT = 28
# Attribute rows label each panel with two lines (value, then faces): "20-39 (11880 faces)"
# would not fit a 128 px panel on one.
ATTRIBUTE_LABEL_HEIGHT = 42
_LINE_HEIGHT = 14
_TEXT_SCALE = 0.4


def figure_panels(image_size: int) -> tuple[int, list[tuple[int, int]]]:
    """(the upscaled panel side, [(top, left) of the male, neutral and female panels])."""
    side = image_size * -(-FIGURE_MIN_PANEL // image_size)  # A whole multiple: nearest.
    top = FIGURE_MARGIN + FIGURE_LABEL_HEIGHT
    return side, [(top, FIGURE_MARGIN + k * (side + FIGURE_MARGIN)) for k in range(3)]


def attribute_panels(prototypes: Prototypes) -> dict[str, list[tuple[int, int, int]]]:
    """Where each attribute row's panels are: name -> [(value, top, left)] of its values with
    faces, in value order (rows below the gender row, in `by_attribute` order; an attribute
    without faces has no row)."""
    side, corners = figure_panels(prototypes.male.shape[0])
    bottom = corners[0][0] + side
    rows = {}
    for name, values in prototypes.by_attribute.items():
        if not values.images:  # No face had any value (e.g. ages on CelebA): no row.
            continue
        top = bottom + FIGURE_MARGIN + ATTRIBUTE_LABEL_HEIGHT
        rows[name] = [(value, top, FIGURE_MARGIN + k * (side + FIGURE_MARGIN))
                      for k, value in enumerate(sorted(values.images))]
        bottom = top + side
    return rows


def prototype_figure(prototypes: Prototypes) -> np.ndarray:
    """A labelled picture of the prototypes: uint8 RGB [H, W, 3].

    Each prototype is upscaled by a whole factor (nearest: its real pixels, not smoothed) to
    at least FIGURE_MIN_PANEL pixels, with "male", "neutral" and "female" above it and how
    it was made (faces averaged, the neutral mix's male weight); below, one row per attribute
    with prototypes per value, each panel labelled with the value and its faces.
    """
    size = prototypes.male.shape[0]
    side, corners = figure_panels(size)
    rows = attribute_panels(prototypes)
    panels = [(top, left) for row in rows.values() for _, top, left in row] + corners
    height = max(top for top, _ in panels) + side + FIGURE_MARGIN
    width = max(left for _, left in panels) + side + FIGURE_MARGIN
    figure = np.full((height, width, 3), 255, np.uint8)
    males, females = prototypes.counts
    labels = (f"male ({males} faces)", f"neutral ({prototypes.male_weight:.0%} male)",
              f"female ({females} faces)")
    for image, corner, label in zip(
            (prototypes.male, prototypes.neutral, prototypes.female), corners, labels):
        _draw_panel(figure, image, corner, side, [label])
    for name, row in rows.items():
        values = prototypes.by_attribute[name]
        for value, top, left in row:
            _draw_panel(figure, values.images[value], (top, left), side,
                        [f"{name} {values.value_names[value]}",
                         f"{values.counts[value]} faces"])
    return figure


def _draw_panel(figure, image, corner, side, lines) -> None:
    """Draws `image` upscaled at `corner` with `lines` of text centred above it."""
    import cv2

    top, left = corner
    pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    factor = side // pixels.shape[0]
    figure[top:top + side, left:left + side] = pixels.repeat(factor, 0).repeat(factor, 1)
    for k, line in enumerate(reversed(lines)):  # The last line sits just above the panel.
        (text_width, _), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, _TEXT_SCALE, 1)
        x = left + max((side - text_width) // 2, 0)
        cv2.putText(figure, line, (x, top - 10 - k * _LINE_HEIGHT), cv2.FONT_HERSHEY_SIMPLEX,
                    _TEXT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
