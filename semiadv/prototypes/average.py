"""Gender prototypes: the mean aligned male and female faces, and the neutral mix of the two."""

from __future__ import annotations

import dataclasses

import numpy as np

from semiadv.prototypes import by_attribute as by_attribute_lib


@dataclasses.dataclass(frozen=True)
class Prototypes:
    """The three prototypes, float32 [H, W, C] in [0, 1], and how they were made."""

    male: np.ndarray
    female: np.ndarray
    neutral: np.ndarray
    male_weight: float
    counts: tuple[int, int]  # (males, females) averaged.
    # [N, 2] mean landmarks of the averaged faces where the dataset has them (CelebA): where
    # the prototypes' eyes, nose and mouth are, for `mixing.warp_to_landmarks`.
    landmarks: np.ndarray | None = None
    # The mean faces per value of other attributes ("age_group", "race"), where asked for.
    by_attribute: dict[str, by_attribute_lib.AttributePrototypes] = dataclasses.field(
        default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.male.shape)


class PrototypeAccumulator:
    """Sums faces per gender batch by batch, so prototypes of any dataset fit in memory."""

    def __init__(self):
        self._sums = [None, None]  # Index 0: female, 1: male.
        self._counts = [0, 0]
        self._landmark_sum = None

    def add(self, images: np.ndarray, male: np.ndarray, landmarks: np.ndarray | None = None):
        """Adds a batch; examples of unknown gender (male == -1) are ignored.

        `landmarks` [B, N, 2], where the dataset has them (CelebA), are averaged over the same
        faces: where the mean face's eyes, nose and mouth are.
        """
        images = np.asarray(images, np.float64)
        male = np.asarray(male)
        if landmarks is not None:
            total = np.asarray(landmarks, np.float64)[male >= 0].sum(axis=0)
            self._landmark_sum = total if self._landmark_sum is None else self._landmark_sum + total
        for label in (0, 1):
            chosen = images[male == label]
            if len(chosen):
                total = chosen.sum(axis=0)
                self._sums[label] = total if self._sums[label] is None else self._sums[label] + total
                self._counts[label] += len(chosen)

    def result(self, male_weight: float | None = None) -> Prototypes:
        """The prototypes; `male_weight` mixes the neutral one (None: the share of males).

        Raises:
          ValueError: when a gender has no examples or the weight is outside [0, 1].
        """
        females, males = self._counts
        if not males or not females:
            raise ValueError(f"prototypes need faces of both genders; got {males} male and "
                             f"{females} female (unknown genders are ignored)")
        if male_weight is None:
            male_weight = males / (males + females)
        if not 0.0 <= male_weight <= 1.0:
            raise ValueError(f"male_weight must be in [0, 1], got {male_weight}")
        male = (self._sums[1] / males).astype(np.float32)
        female = (self._sums[0] / females).astype(np.float32)
        neutral = (male_weight * male + (1 - male_weight) * female).astype(np.float32)
        landmarks = (None if self._landmark_sum is None
                     else (self._landmark_sum / (males + females)).astype(np.float32))
        return Prototypes(male, female, neutral, float(male_weight), (males, females), landmarks)


def compute_prototypes(batches, male_weight: float | None = None,
                       attributes: tuple[str, ...] = ()) -> Prototypes:
    """Computes prototypes from an iterable of `{"image", "male"[, "landmarks"]}` numpy batches.

    Args:
      batches: numpy example batches; they also carry each of `attributes`.
      male_weight: the neutral mix's male weight (None: the share of males).
      attributes: example keys ("age_group", "race") to average per value as well, into
        `Prototypes.by_attribute`.
    """
    accumulator = PrototypeAccumulator()
    per_value = [by_attribute_lib.AttributeAccumulator(name) for name in attributes]
    for batch in batches:
        accumulator.add(batch["image"], batch["male"], batch.get("landmarks"))
        for values in per_value:
            values.add(batch["image"], batch[values.attribute])
    return dataclasses.replace(accumulator.result(male_weight),
                               by_attribute={v.attribute: v.result() for v in per_value})


def check_shape(prototypes: Prototypes, image_size: int, channels: int) -> None:
    """Raises ValueError when prototypes were made for another image size or channel count."""
    if prototypes.image_shape != (image_size, image_size, channels):
        raise ValueError(f"prototypes have shape {prototypes.image_shape}, but the run uses "
                         f"{(image_size, image_size, channels)}: recompute them")
