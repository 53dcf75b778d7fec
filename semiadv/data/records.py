"""Records: the examples of one split of a file-based or synthetic spec, addressable by index.

File and synthetic sets are index-addressable, so the training order is a pure function of
(seed, step) (see `input_pipeline.training_indices`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.data import attributes
from semiadv.data import cache
from semiadv.data import folder_source
from semiadv.data import sources
from semiadv.data import specs
from semiadv.data import splits
from semiadv.data import utkface_source


@dataclasses.dataclass
class Records:
    """The examples of one split, addressable by index.

    Images come from `images` (decoded, in memory) if set, else from `cache_file` (decoded
    once into a file of raw uint8 rows, read row by row) if set, else from `paths` (decoded
    every time they are read). `paths` names the photos of file specs whenever it is set.
    `image_tensor`, when set, is the tensor `images` is a read-only view of: the pipelines
    gather from it, so the decoded images are held once, not once for numpy and once more
    for TensorFlow. `rows[i]` is example i's row in `cache_file`. Labels (`male`, `identity`,
    `age`, `race`: int64, -1 unknown; `age_group` follows from `age`) are read from the
    names or `labels.csv` on every load, never cached with the images: the decoded-image
    caches hold pixels only, so they serve any labels.
    """

    male: np.ndarray
    identity: np.ndarray
    age: np.ndarray
    race: np.ndarray
    images: np.ndarray | None = None
    paths: np.ndarray | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    image_tensor: tf.Tensor | None = dataclasses.field(default=None, repr=False, compare=False)
    cache_file: str | None = None
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.male)

    @property
    def age_group(self) -> np.ndarray:
        """int64 [N] `attributes.AGE_GROUP_NAMES` indices, -1 where the age is unknown."""
        return attributes.age_group(self.age)

    def labels(self) -> dict[str, np.ndarray]:
        """Every label an example carries: male, identity, age, age_group, race."""
        return {"male": self.male, "identity": self.identity, "age": self.age,
                "age_group": self.age_group, "race": self.race}


def _load_source(spec: specs.DatasetSpec, config: DataConfig) -> sources.Source:
    if spec.kind == "synthetic":
        return sources.synthetic_source(config)
    if spec.kind == "utkface":
        return utkface_source.load_source(spec.path)
    if spec.kind == "folder":
        return folder_source.load_source(spec, config)
    raise ValueError(f"{spec.kind} is a tensorflow-datasets spec: use make_dataset")


@functools.lru_cache(maxsize=8)
def load_records(config: DataConfig, split: str) -> Records:
    """Loads the examples of one split of a file-based or synthetic spec.

    Photos are decoded and resized once, then read as raw rows from a file in the cache
    (`config.cache="disk"`, the default: memory stays flat however large the set, and no epoch
    decodes twice), or kept in memory (`"memory"`, when they fit in `config.cache_megabytes`,
    else on disk), or decoded every time they are read (`"none"`).

    Raises:
      ValueError: for a bad spec or split, a missing or empty folder, or no usable images.
    """
    if split not in splits.SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {splits.SPLITS}")
    source = _load_source(specs.parse_spec(config.dataset), config)
    sources.report_skipped(config.dataset, source.skipped)
    identity = np.asarray(source.identity, np.int64)
    assigned = splits.split_of(splits.split_keys(source.names, identity), config.seed,
                               config.validation_fraction, config.test_fraction)
    chosen = np.flatnonzero(assigned == split)
    if chosen.size == 0:
        raise ValueError(f"the {split} split of {config.dataset} is empty "
                         f"({len(assigned)} usable examples in all)")
    labels = _select(source.labels(), chosen)
    if source.images is not None:
        images, tensor = cache.share_images(source.images[chosen])
        return Records(**labels, images=images, skipped=source.skipped, image_tensor=tensor)
    paths = np.asarray(source.paths)[chosen]
    if config.cache == "none":
        return Records(**labels, paths=paths, skipped=source.skipped)
    image_bytes = len(chosen) * config.image_size**2 * config.channels
    if config.cache == "memory" and image_bytes <= config.cache_megabytes * 2**20:
        images, tensor, failed = cache.decode_into_memory(paths, config)
        kept = cache.decoded_mask(paths, failed)
        return Records(**_select(labels, kept), images=images,
                       skipped=_with_undecodable(source.skipped, failed), image_tensor=tensor)
    cache_file, failed = cache.decode_into_file(paths, config)
    kept = cache.decoded_mask(paths, failed)
    return Records(**_select(labels, kept), paths=paths[kept],
                   skipped=_with_undecodable(source.skipped, failed), cache_file=cache_file,
                   rows=np.flatnonzero(kept).astype(np.int64))


def _select(labels: dict[str, np.ndarray], kept: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[kept] for name, values in labels.items()}


def _with_undecodable(skipped, failed) -> tuple[tuple[str, str], ...]:
    return tuple(skipped) + tuple((path, cache.UNDECODABLE) for path in failed)


def has_identities(config: DataConfig) -> bool:
    """Whether the spec labels identities (else the matcher learns from augmented pairs)."""
    spec = specs.parse_spec(config.dataset)
    if spec.kind in specs.TFDS_KINDS:
        return spec.kind == "lfw"
    return bool((load_records(config, "train").identity >= 0).any())
