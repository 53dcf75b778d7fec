"""Sources: every usable example of a file-based or synthetic spec, before splitting.

A source gives labels and either decoded images (synthetic) or photo paths (file specs),
plus the files it skipped and why. `utkface_source.py` and `folder_source.py` read their
specs; the synthetic source is here. No TensorFlow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from absl import logging

from semiadv.config import DataConfig
from semiadv.data import attributes
from semiadv.utils import imageio


@dataclasses.dataclass
class Source:
    """All usable examples of a spec.

    Attributes:
      male: int64 [N], 1 male, 0 female, -1 unknown.
      identity: int64 [N], -1 where unknown.
      names: N names unique within the spec, hashed into splits where identity is unknown.
      skipped: (file or `labels.csv:row`, why) for every example left out.
      images: uint8 [N, S, S, C] decoded images, or None.
      paths: N photo paths, when `images` is None.
      age: int64 [N] years, -1 unknown (None: all unknown).
      race: int64 [N] `attributes.RACE_NAMES` codes, -1 unknown (None: all unknown).
    """

    male: np.ndarray
    identity: np.ndarray
    names: list[str]
    skipped: tuple[tuple[str, str], ...] = ()
    images: np.ndarray | None = None
    paths: list[str] | None = None
    age: np.ndarray | None = None
    race: np.ndarray | None = None

    def __post_init__(self):
        count = len(self.male)
        self.age = attributes.unknown(count) if self.age is None else self.age
        self.race = attributes.unknown(count) if self.race is None else self.race

    def labels(self) -> dict[str, np.ndarray]:
        """{"male", "identity", "age", "race"}: int64 [N] each."""
        return {name: np.asarray(getattr(self, name), np.int64)
                for name in attributes.LABELS + ("identity",)}


def synthetic_source(config: DataConfig) -> Source:
    """The embedded procedurally drawn faces of `config`'s size and channels."""
    from semiadv.data import synthetic  # Imported here: drawing code is only needed for this spec.

    faces = synthetic.make_faces(config.synthetic_identities, config.synthetic_images_per_identity,
                                 config.image_size, config.channels, seed=config.seed)
    # Held as uint8 like decoded photos: a quarter of the memory, identical pipeline after.
    images = np.round(faces["image"] * 255).astype(np.uint8)
    return Source(male=faces["male"], identity=faces["identity"],
                  names=[str(i) for i in range(len(images))], images=images,
                  age=faces["age"], race=faces["race"])


def require_folder(path: Path) -> None:
    """Raises ValueError naming `path` unless it is a folder."""
    if not path.is_dir():
        raise ValueError(f"dataset folder {path} does not exist or is not a folder")


def drop_unreadable(paths, labels: dict):
    """Drops files that cannot be images (0-byte, truncated, not an image) and says why.

    Args:
      paths: N photo paths.
      labels: name -> N labels of the photos (`male`, `identity`, ...).

    Returns:
      (paths as strings, the labels of those as int64 arrays, [(path, why) of the dropped
      files]).
    """
    keep, skipped = [], []
    for index, path in enumerate(paths):
        try:
            imageio.check_image_file(path)
            keep.append(index)
        except imageio.ImageReadError as error:
            skipped.append((str(path), str(error)))
    keep = np.array(keep, dtype=np.int64)
    return ([str(paths[i]) for i in keep],
            {name: np.asarray(values, np.int64)[keep] for name, values in labels.items()},
            skipped)


def report_skipped(dataset: str, skipped) -> None:
    """Logs one warning for the examples left out of `dataset`, with the first few reasons."""
    if skipped:
        examples = "; ".join(f"{where}: {why}" for where, why in skipped[:3])
        logging.warning("%s: skipped %d unusable file(s), e.g. %s", dataset, len(skipped), examples)
