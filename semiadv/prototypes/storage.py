"""Prototype files: the `.npz` the training and the export read, and its labelled `.png`.

The `.npz` holds `male`, `female`, `neutral` ([H, W, C] float32), `male_weight`, `counts`
(males, females) and, where the dataset had landmarks, `landmarks` [N, 2].
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from semiadv.prototypes import figure
from semiadv.prototypes.average import Prototypes
from semiadv.utils import files
from semiadv.utils import imageio


def save_prototypes(prototypes: Prototypes, path: str | Path, png: bool = True) -> None:
    """Writes the prototypes to `path` (.npz) and, if asked, a labelled PNG of them
    (`figure.prototype_figure`) beside it.

    Both are written atomically: a killed run never leaves a half-written prototype file that
    a later stage would trust.
    """
    path = Path(path)
    extra = {} if prototypes.landmarks is None else {"landmarks": prototypes.landmarks}
    with files.atomic_path(path) as temp_path, open(temp_path, "wb") as handle:
        # A file object, not a name: np.savez would add ".npz" to the temporary name.
        np.savez(handle, male=prototypes.male, female=prototypes.female,
                 neutral=prototypes.neutral, male_weight=prototypes.male_weight,
                 counts=np.array(prototypes.counts), **extra)
    if png:
        imageio.write_image(path.with_suffix(".png"), figure.prototype_figure(prototypes))


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
