"""Training augmentation: none, a left-right flip, or two random views of each face.

Random numbers come from (seed, stream position), never from a replica's RNG, so a batch is
augmented the same however it is split over replicas and workers. Each augmenter takes
(example, seed, position) and returns the example with its augmented fields.
"""

from __future__ import annotations

import tensorflow as tf

# Which landmark each one becomes in a left-right mirror image of the face, for landmarks in
# the order of `tfds_sources.CELEB_A_LANDMARKS` (left eye, right eye, nose, left and right
# mouth corners).
MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)


def _unchanged(example, seed, position):
    del seed, position
    return example


def flip(example, seed, position):
    """Flips the face left-right with probability 1/2 and says so in `flipped`.

    The step flips the face's prototypes with the same coin. Landmarks, where the example has
    them, follow the face.
    """
    coin = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), position]))
    flipped = coin < 0.5
    image = tf.where(flipped, tf.reverse(example["image"], axis=[1]), example["image"])
    flipped_example = {**example, "image": image, "flipped": flipped}
    if "landmarks" in example:
        # x mirrors (pixel centres at integers) and the left eye / mouth corner of the
        # mirrored face is the old right one.
        landmarks = example["landmarks"]
        width = tf.cast(tf.shape(image)[1], landmarks.dtype)
        mirrored = tf.stack([width - 1 - landmarks[:, 0], landmarks[:, 1]], axis=-1)
        mirrored = tf.gather(mirrored, MIRRORED_LANDMARKS)
        flipped_example["landmarks"] = tf.where(flipped, mirrored, landmarks)
    return flipped_example


def augment_view(image, seed):
    """A random view of a face: shift, scale, flip, brightness and contrast; seed is [2] int."""
    seeds = tf.random.experimental.stateless_split(seed, 5)
    size = tf.shape(image)[0]
    margin = tf.maximum(size // 8, 1)
    padded = tf.pad(image, [[margin, margin], [margin, margin], [0, 0]], mode="REFLECT")
    crop = tf.random.stateless_uniform([], seeds[0], size - margin, size + margin + 1, tf.int32)
    image = tf.image.stateless_random_crop(padded, tf.stack([crop, crop, tf.shape(image)[2]]),
                                           seeds[1])
    image = tf.image.resize(image, tf.stack([size, size]), antialias=True)
    image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    image = tf.image.stateless_random_brightness(image, 0.1, seeds[3])
    image = tf.image.stateless_random_contrast(image, 0.8, 1.2, seeds[4])
    return tf.clip_by_value(image, 0.0, 1.0)


def views(example, seed, position):
    """Adds `view_a` and `view_b`: two independent `augment_view`s of the face, the matcher's
    positive pair when the data has no identities."""
    base = tf.stack([tf.cast(seed, tf.int64) + 7919, position])
    view_a, view_b = (augment_view(example["image"], s)
                      for s in tf.unstack(tf.random.experimental.stateless_split(base, 2)))
    return {**example, "view_a": view_a, "view_b": view_b}


# `make_dataset`'s `augment` values.
AUGMENTERS = {None: _unchanged, "flip": flip, "views": views}


def augmenter(name: str | None):
    """The augmenter called `name` (None: no augmentation).

    Raises:
      ValueError: naming `name` when it is not one of `AUGMENTERS`.
    """
    if name not in AUGMENTERS:
        raise ValueError(f"unknown augment {name!r}; use one of {sorted(AUGMENTERS, key=str)}")
    return AUGMENTERS[name]
