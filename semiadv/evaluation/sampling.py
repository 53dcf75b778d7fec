"""Which faces of a split an evaluation reads when it reads fewer than all: spread over it.

The first faces of a split are not a sample of it: UTKFace's splits are in file-name order
and its names start with the age, so its first 1000 test faces are a quarter children and its
first 2000 training faces mostly children. Every "N faces of a split" read in the evaluation
goes through here and takes faces evenly spaced over the whole split instead. A split with
identities (a person with at least two photos) is sampled by person, every photo of each chosen
person kept, so genuine pairs survive the sampling.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.data import input_pipeline, records, specs


def spread_indices(total: int, count: int | None) -> np.ndarray:
    """min(count, total) indices of [0, total), evenly spaced: the middle of each of `count`
    equal parts.

    Unlike every k-th with a rounded-down k followed by a cut at `count`, the chosen indices
    span the whole range whatever `total / count` is (every k-th of 2400 cut at 1000 never
    reaches the last 400, UTKFace's oldest).
    """
    if count is None or count >= total:
        return np.arange(total)
    return ((2 * np.arange(count) + 1) * total // (2 * count)).astype(np.int64)


def spread(values: np.ndarray, count: int | None) -> np.ndarray:
    """At most `count` of `values`, evenly spaced over them (`spread_indices`)."""
    return values[spread_indices(len(values), count)]


def has_identity_pairs(identity: np.ndarray) -> bool:
    """Whether some person has at least two photos (a genuine pair with distinct photos)."""
    known = identity[identity >= 0]
    return bool(len(known)) and np.bincount(known - known.min()).max() >= 2


def identity_spread_indices(identity: np.ndarray, count: int | None) -> np.ndarray:
    """Indices of about `count` photos, whole persons spread over the split, sorted.

    Persons with at least two photos are taken, spread over their order of first appearance,
    until `count` photos are reached (the last person whole: a pair is not split); photos of
    unknown or single-photo persons only when there are no pairs at all (then `spread_indices`).
    """
    if not has_identity_pairs(identity):
        return spread_indices(len(identity), count)
    people, first, sizes = np.unique(identity, return_index=True, return_counts=True)
    paired = (people >= 0) & (sizes >= 2)
    people, first, sizes = people[paired], first[paired], sizes[paired]
    order = np.argsort(first, kind="stable")
    people, sizes = people[order], sizes[order]
    if count is not None and sizes.sum() > count:
        # People needed at the mean photos per person; spread over all of them.
        wanted = max(1, int(round(count / sizes.mean())))
        chosen = spread_indices(len(people), wanted)
        kept = np.cumsum(sizes[chosen]) <= max(count, int(sizes[chosen[0]]))
        people = people[chosen[kept]]
    return np.flatnonzero(np.isin(identity, people))


def _labels(data_config: DataConfig, split: str) -> dict[str, np.ndarray] | None:
    """Every example's labels without reading its image, or None for a TFDS set."""
    if specs.parse_spec(data_config.dataset).kind in specs.TFDS_KINDS:
        return None
    return records.load_records(data_config, split).labels()


def read_spread(data_config: DataConfig, split: str, count: int | None,
                keep_identities: bool = False) -> dict[str, np.ndarray]:
    """About `count` examples (None: all) of `split` spread over it, in the split's order.

    Args:
      data_config: the data.
      split: train, validation or test.
      count: examples wanted; None reads the whole split.
      keep_identities: sample by person (`identity_spread_indices`) so the persons read keep
        their genuine pairs; a split without identities is spread face by face.

    A TFDS set, whose length is unknown before reading, is read whole and then spread.

    Raises:
      ValueError: when the split is empty.
    """
    labels = _labels(data_config, split)
    dataset = input_pipeline.make_dataset(data_config, split, training=False).unbatch()
    if labels is not None and count is not None:
        total = len(labels["male"])
        indices = (identity_spread_indices(labels["identity"], count) if keep_identities
                   else spread_indices(total, count))
        chosen = np.zeros(total, bool)
        chosen[indices] = True
        wanted = tf.constant(chosen)
        dataset = dataset.enumerate().filter(
            lambda index, example: tf.gather(wanted, index)).map(lambda _, example: example)
    parts = list(dataset.batch(data_config.batch_size).as_numpy_iterator())
    if not parts:
        raise ValueError(f"the {split} split of {data_config.dataset} is empty")
    split_examples = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    if labels is None and count is not None:
        indices = (identity_spread_indices(split_examples["identity"], count) if keep_identities
                   else spread_indices(len(split_examples["male"]), count))
        split_examples = {key: values[indices] for key, values in split_examples.items()}
    return split_examples
