"""The `celeb_a` and `lfw` specs: examples read through tensorflow-datasets.

CelebA's own partition is disjoint by identity. LFW ships one split: identities are held out
by a stable hash of their names, like the identities of file specs.

Neither labels age or race: `age`, `age_group` and `race` are -1. CelebA's `Young` is not
turned into an age group: it is an annotator's yes/no impression with no age in years behind
it, so no group boundary (`attributes.AGE_GROUP_STARTS`) can honestly be read from it.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.data import attributes
from semiadv.data import image_ops
from semiadv.data import pipeline_options

# The landmarks of a CelebA example, in the order the examples' `landmarks` [5, 2] hold them.
CELEB_A_LANDMARKS = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")

_CELEB_A_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def tfds_examples(name: str, config: DataConfig, split: str, *, training: bool,
                  input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """The unbatched examples of one split of `celeb_a` or `lfw`, at the config's size.

    Args:
      name: "celeb_a" or "lfw".
      config: the data config (image size, channels, seed, split fractions, tfds data dir).
      split: train, validation or test.
      training: shuffle the files (the order is then not reproducible).
      input_context: this input pipeline's share of the files.
    """
    import tensorflow_datasets as tfds  # Heavy import: only tfds specs pay for it.

    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=config.seed)
    if name == "celeb_a":
        dataset = tfds.load("celeb_a", split=_CELEB_A_SPLITS[split], data_dir=config.tfds_data_dir,
                            shuffle_files=training, read_config=read_config)
        return dataset.map(functools.partial(_celeb_a_example, config=config),
                           num_parallel_calls=pipeline_options.PARALLEL_CALLS)
    dataset = tfds.load("lfw", split="train", data_dir=config.tfds_data_dir,
                        shuffle_files=training, read_config=read_config)
    dataset = dataset.filter(functools.partial(_in_lfw_split, config=config, split=split))
    return dataset.map(functools.partial(_lfw_example, config=config),
                       num_parallel_calls=pipeline_options.PARALLEL_CALLS)


def _unknown_age_and_race():
    unknown = tf.constant(attributes.UNKNOWN, tf.int64)
    return {"age": unknown, "age_group": unknown, "race": unknown}


def _hash_unit(text):
    """A stable hash of a string tensor mapped to [0, 1)."""
    bucket = tf.strings.to_hash_bucket_fast(text, 2**31 - 1)
    return tf.cast(bucket, tf.float64) / (2**31 - 1)


def _in_lfw_split(example, *, config: DataConfig, split: str):
    unit = _hash_unit(tf.strings.join([str(config.seed), "/", example["label"]]))
    test = unit < config.test_fraction
    validation = tf.logical_and(~test, unit < config.test_fraction + config.validation_fraction)
    return {"test": test, "validation": validation,
            "train": tf.logical_not(tf.logical_or(test, validation))}[split]


def _lfw_example(example, *, config: DataConfig):
    # LFW's 250x250 photos are centred on the face at about twice its size: the centre crop
    # frames it like an aligned crop.
    image = tf.image.central_crop(example["image"], 0.5)
    return {"image": tf.image.convert_image_dtype(
                image_ops.resize_uint8(image, config.image_size, config.channels), tf.float32),
            "male": tf.constant(-1, tf.int64),
            "identity": tf.strings.to_hash_bucket_fast(example["label"], 2**62),
            **_unknown_age_and_race()}


def _celeb_a_example(example, *, config: DataConfig):
    from semiadv.align import tf_warp  # Landmark alignment: TF ops, here only for CelebA.

    landmarks = tf.stack([tf.stack([example["landmarks"][f"{name}_x"],
                                    example["landmarks"][f"{name}_y"]])
                          for name in CELEB_A_LANDMARKS])
    image, aligned_landmarks = tf_warp.align_by_eyes(
        example["image"], tf.cast(landmarks, tf.float32), config.image_size)
    image = image_ops.resize_uint8(image, config.image_size, config.channels)
    return {"image": tf.image.convert_image_dtype(image, tf.float32),
            "male": tf.cast(example["attributes"]["Male"], tf.int64),
            "identity": tf.constant(-1, tf.int64),
            "landmarks": aligned_landmarks,
            **_unknown_age_and_race()}
