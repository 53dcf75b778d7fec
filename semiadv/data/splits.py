"""Split assignment: which photos are for training, validation and test.

Splits are deterministic and disjoint by identity wherever identities exist: every photo of a
person lands in the person's split. No TensorFlow.
"""

from __future__ import annotations

import zlib

import numpy as np

SPLITS = ("train", "validation", "test")


def split_of(keys, seed: int, validation_fraction: float, test_fraction: float) -> np.ndarray:
    """Assigns each key (an identity or a file name) to a split by a stable hash.

    The hash of `seed/key` does not depend on the other keys, so adding photos never moves
    existing ones between splits, and every photo of one identity lands in the same split.

    Returns:
      An array of split names, one per key.
    """
    uniform = np.array([zlib.crc32(f"{seed}/{key}".encode()) / 2**32 for key in keys])
    return np.where(uniform < test_fraction, "test",
                    np.where(uniform < test_fraction + validation_fraction, "validation", "train"))


def split_keys(names, identity) -> list[str]:
    """The keys `split_of` hashes: the identity where it is known (>= 0), else the file name.

    Args:
      names: one name per example, unique within the dataset.
      identity: one identity per example, -1 where unknown.
    """
    return [f"id:{i}" if i >= 0 else f"file:{n}" for n, i in zip(names, identity)]
