"""Prototypes per attribute value: the mean face of each age group and of each race code.

The gender prototypes (`average.Prototypes`) are what the SAN is trained with; these sit beside
them in the same `.npz` (`storage`) for attribute-conditioned work, one mean face per value of
`semiadv.data.attributes.VALUE_NAMES[attribute]` that has faces, with the count of each value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from semiadv.data import attributes
from semiadv.errors import UserValueError

GENDER = "gender"
# What `--attributes` takes: gender (the `male` key, always computed: its prototypes are the
# SAN's) and the example keys that get prototypes per value.
CHOICES = (GENDER, "age_group", "race")


def parse_attributes(names) -> tuple[str, ...]:
    """The example keys of the attributes named (besides gender, which is always computed).

    Args:
      names: attribute names from CHOICES, e.g. ["gender", "race"].

    Returns:
      The non-gender ones, in CHOICES order, each once.

    Raises:
      UserValueError: naming an attribute that is not one of CHOICES.
    """
    names = [name.strip() for name in names if name.strip()]
    unknown = sorted(set(names) - set(CHOICES))
    if unknown:
        raise UserValueError(f"unknown attribute(s) {', '.join(map(repr, unknown))}: "
                             f"use any of {', '.join(CHOICES)}")
    return tuple(name for name in CHOICES if name in names and name != GENDER)


@dataclasses.dataclass(frozen=True)
class AttributePrototypes:
    """The mean faces of one attribute's values.

    Attributes:
      attribute: the example key, e.g. "age_group" or "race".
      images: value -> float32 [H, W, C] mean face, for the values that have faces only.
      counts: faces averaged per value, one entry per value name (0: no faces, no image).
    """

    attribute: str
    images: dict[int, np.ndarray]
    counts: tuple[int, ...]

    @property
    def value_names(self) -> tuple[str, ...]:
        return attributes.VALUE_NAMES[self.attribute]

    @property
    def missing(self) -> tuple[int, ...]:
        """The values no face had: left out of `images`."""
        return tuple(value for value, count in enumerate(self.counts) if count == 0)

    def describe(self) -> str:
        """One line: each value's name and count, e.g. `race: White 10078, Black 4525, ...`."""
        return f"{self.attribute}: " + ", ".join(
            f"{name} {count}" for name, count in zip(self.value_names, self.counts))


class AttributeAccumulator:
    """Sums faces per value of one attribute batch by batch; unknown values (-1) are ignored."""

    def __init__(self, attribute: str):
        if attribute not in attributes.VALUE_NAMES:
            raise ValueError(f"no prototypes per value of {attribute!r}; "
                             f"use one of {sorted(attributes.VALUE_NAMES)}")
        self.attribute = attribute
        size = len(attributes.VALUE_NAMES[attribute])
        self._sums = [None] * size
        self._counts = [0] * size

    def add(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Adds a batch of float [B, H, W, C] faces with their int [B] values of the attribute."""
        images = np.asarray(images, np.float64)
        labels = np.asarray(labels)
        if (labels >= len(self._counts)).any():
            raise ValueError(f"{self.attribute} values must be < {len(self._counts)}, got "
                             f"{int(labels.max())}")
        for value in np.unique(labels[labels >= 0]):
            total = images[labels == value].sum(axis=0)
            self._sums[value] = total if self._sums[value] is None else self._sums[value] + total
            self._counts[value] += int((labels == value).sum())

    def result(self) -> AttributePrototypes:
        return AttributePrototypes(
            self.attribute,
            {value: (total / count).astype(np.float32)
             for value, (total, count) in enumerate(zip(self._sums, self._counts)) if count},
            tuple(self._counts))
