"""The soft-biometric labels every example carries besides its image, and what their values mean.

  male       1 male, 0 female.
  age        years (UTKFace: 1..116).
  age_group  the age's group: AGE_GROUP_NAMES[k] (bounds in AGE_GROUP_STARTS, the one place).
  race       UTKFace's five codes: RACE_NAMES[k].

-1 means unknown for every label. No TensorFlow: sources and the Beam driver read these.
"""

from __future__ import annotations

import numpy as np

UNKNOWN = -1

# The first age of each group: 0-19, 20-39, 40-59, 60+. Four groups of 20 years: coarse enough
# that each has thousands of UTKFace faces (the last one pools the sparse old ages).
AGE_GROUP_STARTS = (0, 20, 40, 60)
AGE_GROUP_NAMES = tuple(
    f"{start}-{end - 1}" for start, end in zip(AGE_GROUP_STARTS, AGE_GROUP_STARTS[1:])
) + (f"{AGE_GROUP_STARTS[-1]}+",)

# Ages above this are typos, not people (UTKFace: 1..116).
MAX_AGE = 130

# UTKFace's race codes, in its order (the code is the index).
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")

# The labels a source gives per example, besides `identity`.
LABELS = ("male", "age", "race")

# Attributes with prototypes per value (`semiadv.prototypes`): the example key and value names.
# Gender is the key `male`, whose prototypes are the SAN's male/female pair.
VALUE_NAMES = {
    "male": ("female", "male"),
    "age_group": AGE_GROUP_NAMES,
    "race": RACE_NAMES,
}


def age_group(age) -> np.ndarray:
    """int64 age groups (indices into AGE_GROUP_NAMES) of ages in years; -1 where age < 0."""
    age = np.asarray(age, np.int64)
    group = np.searchsorted(np.asarray(AGE_GROUP_STARTS), age, side="right") - 1
    return np.where(age >= 0, group, UNKNOWN).astype(np.int64)


def unknown(count: int) -> np.ndarray:
    """int64 [count] of -1: a label the source does not know."""
    return np.full(count, UNKNOWN, np.int64)
