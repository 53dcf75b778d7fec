"""Prototype files: the `.npz` the training and the export read, and its labelled `.png`.

The `.npz` holds `male`, `female`, `neutral` ([H, W, C] float32), `male_weight`, `counts`
(males, females) and, where the dataset had landmarks, `landmarks` [N, 2]. Prototypes per
value of another attribute (`by_attribute`), where computed, add `<attribute>_counts` (faces
per value, one per value name in `semiadv.data.attributes.VALUE_NAMES`) and
`<attribute>_<value>` ([H, W, C]) for each value with faces, e.g. `race_counts`, `race_2`.
Files without them (written before they existed, or by the default run) load with none.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from semiadv.data import attributes
from semiadv.prototypes import figure
from semiadv.prototypes.average import Prototypes
from semiadv.prototypes.by_attribute import AttributePrototypes

_COUNTS_SUFFIX = "_counts"
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
    for name, values in prototypes.by_attribute.items():
        extra[name + _COUNTS_SUFFIX] = np.array(values.counts, np.int64)
        extra.update({f"{name}_{value}": image for value, image in values.images.items()})
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
                                data["landmarks"] if "landmarks" in data.files else None,
                                _read_by_attribute(data))
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable prototype file: {error}") from error
    shapes = {result.male.shape, result.female.shape, result.neutral.shape}
    shapes.update(image.shape for values in result.by_attribute.values()
                  for image in values.images.values())
    if len(shapes) != 1 or result.male.ndim != 3 or len(result.counts) != 2:
        raise ValueError(f"{path} is not a prototype file: its prototypes must be "
                         f"[H, W, C] images of one shape, got {sorted(shapes)}")
    return result


def _read_by_attribute(data) -> dict[str, AttributePrototypes]:
    result = {}
    for key in data.files:
        name = key[:-len(_COUNTS_SUFFIX)]
        if not key.endswith(_COUNTS_SUFFIX) or not name:
            continue
        counts = tuple(int(count) for count in data[key])
        if name not in attributes.VALUE_NAMES or len(counts) != len(attributes.VALUE_NAMES[name]):
            raise ValueError(f"{key} must count the faces of each value of a known attribute "
                             f"({sorted(attributes.VALUE_NAMES)}), got {counts}")
        # KeyError (a value with faces but no image): reported as an unreadable file.
        images = {value: data[f"{name}_{value}"] for value, count in enumerate(counts) if count}
        result[name] = AttributePrototypes(name, images, counts)
    return result
