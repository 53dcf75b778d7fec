"""Gender prototypes: the mean aligned male and female faces, and their per-example mixes.

The SAN's autoencoder sees each face with its same-gender prototype P_SM and re-renders it
with the opposite one P_OP (or the neutral mix P_NT at inference). For a label y (1 = male):

    P_SM(y) = y * P_male + (1 - y) * P_female
    P_OP(y) = (1 - y) * P_male + y * P_female
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Prototypes:
    """The three prototypes, float32 [H, W, C] in [0, 1], and how they were made."""

    male: np.ndarray
    female: np.ndarray
    neutral: np.ndarray
    male_weight: float
    counts: tuple[int, int]  # (males, females) averaged.
    # [N, 2] mean landmarks of the averaged faces where the dataset has them (CelebA): where
    # the prototypes' eyes, nose and mouth are, for `warp_to_landmarks`.
    landmarks: np.ndarray | None = None

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


def compute_prototypes(batches, male_weight: float | None = None) -> Prototypes:
    """Computes prototypes from an iterable of `{"image", "male"[, "landmarks"]}` numpy batches."""
    accumulator = PrototypeAccumulator()
    for batch in batches:
        accumulator.add(batch["image"], batch["male"], batch.get("landmarks"))
    return accumulator.result(male_weight)


def save_prototypes(prototypes: Prototypes, path: str | Path, png: bool = True) -> None:
    """Writes the prototypes to `path` (.npz) and, if asked, a labelled PNG of them
    (`prototype_figure`).

    Both files are written to a temporary name and renamed, so a killed run never leaves a
    half-written prototype file that a later stage would trust.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden temporary name next to the target (same file system, so the rename is atomic),
    # removed if anything fails before the rename.
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False)
    try:
        with handle:
            extra = {} if prototypes.landmarks is None else {"landmarks": prototypes.landmarks}
            np.savez(handle, male=prototypes.male, female=prototypes.female,
                     neutral=prototypes.neutral, male_weight=prototypes.male_weight,
                     counts=np.array(prototypes.counts), **extra)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    if png:
        from semiadv.utils import imageio

        imageio.write_image(path.with_suffix(".png"), prototype_figure(prototypes))


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


def load_prototypes(path: str | Path) -> Prototypes:
    """Reads prototypes written by `save_prototypes`.

    Raises:
      ValueError: naming the file when it is missing or not a prototype file.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # A plain .npy array.
            raise ValueError("not an .npz archive")
        with loaded as data:
            result = Prototypes(data["male"], data["female"], data["neutral"],
                                float(data["male_weight"]), tuple(int(c) for c in data["counts"]),
                                data["landmarks"] if "landmarks" in data.files else None)
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable prototype file: {error}") from error
    shapes = {result.male.shape, result.female.shape, result.neutral.shape}
    if len(shapes) != 1 or result.male.ndim != 3 or len(result.counts) != 2:
        raise ValueError(f"{path} is not a prototype file: male, female and neutral must be "
                         f"[H, W, C] images of one shape, got {sorted(shapes)}")
    return result


def check_shape(prototypes: Prototypes, image_size: int, channels: int) -> None:
    """Raises ValueError when prototypes were made for another image size or channel count."""
    if prototypes.image_shape != (image_size, image_size, channels):
        raise ValueError(f"prototypes have shape {prototypes.image_shape}, but the run uses "
                         f"{(image_size, image_size, channels)}: recompute them")


# ----------------------------------------------------------------------------------------------
# Batched tf ops


def _weights(male, dtype):
    return tf.reshape(tf.cast(male, dtype), [-1, 1, 1, 1])


def same_prototype(male, prototype_male, prototype_female):
    """P_SM(y) = y * P_male + (1 - y) * P_female for a batch of labels y (1 = male)."""
    y = _weights(male, prototype_male.dtype)
    return y * prototype_male[None] + (1 - y) * prototype_female[None]


def opposite_prototype(male, prototype_male, prototype_female):
    """P_OP(y) = (1 - y) * P_male + y * P_female for a batch of labels y (1 = male)."""
    y = _weights(male, prototype_male.dtype)
    return (1 - y) * prototype_male[None] + y * prototype_female[None]


def flip_where(tensors, flipped):
    """Flips left-right the examples of each [B, H, W, C] tensor where `flipped` [B] is true.

    The input pipeline flips faces (`semiadv.data.datasets`, augment="flip") and reports which; the
    step flips their prototypes with the same coins. The paper's code flipped only the face,
    so face and prototype disagreed on which side was which for half the batch.

    Args:
      tensors: a list of [B, H, W, C] tensors of one batch.
      flipped: [B] bool.

    Returns:
      The list, flipped where asked.
    """
    mask = tf.reshape(tf.cast(flipped, tf.bool), [-1, 1, 1, 1])
    return [tf.where(mask, tf.reverse(value, axis=[2]), value) for value in tensors]


def warp_to_landmarks(prototype_images, landmarks, template):
    """Warps prototypes so their landmarks (the `template`) land on each face's landmarks.

    The paper aligned the prototype to each face; with five landmarks an affine map fitted by
    least squares follows the face's eyes, nose and mouth.

    Args:
      prototype_images: [B, H, W, C] prototypes (aligned like the mean face).
      landmarks: [B, N, 2] (x, y) of each face, in pixels of the [H, W] crop.
      template: [N, 2] the same landmarks on the prototypes.

    Returns:
      [B, H, W, C] float32 warped prototypes.
    """
    landmarks = tf.cast(landmarks, tf.float32)
    template = tf.cast(template, tf.float32)
    batch = tf.shape(landmarks)[0]
    count = tf.shape(landmarks)[1]
    # Output pixel at a face landmark reads the prototype at the template landmark: solve
    # [x y 1] @ A = template for A [3, 2] per example.
    design = tf.concat([landmarks, tf.ones([batch, count, 1])], axis=-1)
    targets = tf.broadcast_to(template[None], tf.shape(landmarks))
    affine = tf.linalg.lstsq(design, targets, fast=False)  # [B, 3, 2]
    # ImageProjectiveTransformV3 reads input x from a0*x + a1*y + a2 and y from b0..b2.
    transforms = tf.concat([affine[:, :, 0], affine[:, :, 1], tf.zeros([batch, 2])], axis=-1)
    size = tf.shape(prototype_images)[1:3]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(prototype_images, tf.float32), transforms=transforms, output_shape=size,
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="NEAREST")
