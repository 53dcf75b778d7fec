"""Datasets: one entry point that turns a dataset spec into a `tf.data.Dataset`.

Every example is `{"image": float32 [H, W, C] in [0, 1], "male": int64 (0/1, -1 unknown),
"identity": int64 (-1 unknown)}` at the configured size and channels.

Specs (see `parse_spec`):
  synthetic             the embedded procedurally drawn faces (no files, no download).
  utkface:PATH          UTKFace file names `age_gender_race_date.jpg.chip.jpg` (0 = male).
  folder:PATH           photos with `PATH/labels.csv` (file, male[, identity]) or the layout
                        `PATH/<identity>/*.jpg`; photos are aligned first unless the spec says
                        `folder:PATH?aligned=1`.
  celeb_a, lfw          through tensorflow-datasets.

Splits are deterministic and disjoint by identity wherever identities exist. File and synthetic
sets are index-addressable, so the training order is a pure function of (seed, step): a resumed
run reads exactly the batches an uninterrupted one would have, and each input pipeline of a
`tf.distribute.InputContext` takes its own slice of every global batch.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import os
import re
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from semiadv.utils import imageio
from semiadv.utils import parallel
from semiadv.config import DataConfig

SPLITS = ("train", "validation", "test")
# Fixed parallelism and prefetch instead of tf.data.AUTOTUNE: an autotuned iterator runs a
# model thread whose sleep doubles up to 60 s, and deleting the iterator waits for it, which
# stalled every stage boundary of a long run by up to a minute (BENCHMARKS.md). Decoding is
# the only costly map: one call per core keeps the cores busy, and a few batches of prefetch
# keep the step from waiting (benchmarks/input_pipeline.py).
_PARALLEL_CALLS = parallel.available_cores()
_PREFETCH_BATCHES = 4
_UNDECODABLE = "TensorFlow could not decode it"
# The UTKFace name: age_gender_race_date..., gender 0 = male, 1 = female. Real files have junk
# after the date (a space, a missing dot) and dates of 16 or 18 digits: what matters (age,
# gender, race) is there, so they are kept. Names without the race field are skipped.
_UTKFACE_NAME = re.compile(r"^(?P<age>\d+)_(?P<gender>[01])_(?P<race>[0-4])_(?P<date>\d+)")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec."""

    kind: str
    path: Path | None = None
    aligned: bool = True


def parse_spec(spec: str) -> DatasetSpec:
    """Parses `synthetic`, `utkface:PATH`, `folder:PATH[?aligned=1]`, `celeb_a` or `lfw`.

    Raises:
      ValueError: naming the spec when it is not one of those.
    """
    kind, _, rest = spec.partition(":")
    if kind in ("synthetic", "celeb_a", "lfw"):
        if rest:
            raise ValueError(f"dataset spec {spec!r}: {kind} takes no path")
        return DatasetSpec(kind)
    if kind in ("utkface", "folder"):
        if not rest:
            raise ValueError(f"dataset spec {spec!r}: {kind} needs a path, e.g. {kind}:/data/faces")
        path, _, query = rest.partition("?")
        aligned = kind == "utkface"
        for option in filter(None, query.split("&")):
            name, _, value = option.partition("=")
            if name != "aligned" or value not in ("0", "1"):
                raise ValueError(f"dataset spec {spec!r}: unknown option {option!r} (use aligned=0|1)")
            aligned = value == "1"
        return DatasetSpec(kind, Path(path).expanduser(), aligned)
    raise ValueError(
        f"unknown dataset spec {spec!r}: use synthetic, utkface:PATH, folder:PATH, celeb_a or lfw")


@dataclasses.dataclass
class Records:
    """The examples of one split, addressable by index.

    Images come from `images` (decoded, in memory) if set, else from `cache_file` (decoded
    once into a file of raw uint8 rows, read row by row) if set, else from `paths` (decoded
    every time they are read). `paths` names the photos of file specs whenever it is set.
    `image_tensor`, when set, is the tensor `images` is a read-only view of: the pipelines
    gather from it, so the decoded images are held once, not once for numpy and once more
    for TensorFlow. `rows[i]` is example i's row in `cache_file`.
    """

    male: np.ndarray
    identity: np.ndarray
    images: np.ndarray | None = None
    paths: np.ndarray | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    image_tensor: tf.Tensor | None = dataclasses.field(default=None, repr=False, compare=False)
    cache_file: str | None = None
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.male)


# ----------------------------------------------------------------------------------------------
# Split assignment


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


def _split_keys(names, identity) -> list[str]:
    return [f"id:{i}" if i >= 0 else f"file:{n}" for n, i in zip(names, identity)]


# ----------------------------------------------------------------------------------------------
# Sources: each returns all usable examples of a spec (labels + images or paths) and the skips.


def _synthetic_source(config: DataConfig):
    from semiadv.data import synthetic  # Imported here: drawing code is only needed for this spec.

    faces = synthetic.make_faces(config.synthetic_identities, config.synthetic_images_per_identity,
                                 config.image_size, config.channels, seed=config.seed)
    # Held as uint8 like decoded photos: a quarter of the memory, identical pipeline after.
    images = np.round(faces["image"] * 255).astype(np.uint8)
    return dict(images=images, male=faces["male"], identity=faces["identity"],
                names=[str(i) for i in range(len(images))], skipped=())


def _checked(paths, male, identity):
    """Drops files that cannot be images (0-byte, truncated, not an image) and says why."""
    keep, skipped = [], []
    for index, path in enumerate(paths):
        try:
            imageio.check_image_file(path)
            keep.append(index)
        except imageio.ImageReadError as error:
            skipped.append((str(path), str(error)))
    keep = np.array(keep, dtype=np.int64)
    return ([str(paths[i]) for i in keep], np.asarray(male, np.int64)[keep],
            np.asarray(identity, np.int64)[keep], skipped)


def parse_utkface_name(name: str) -> int | None:
    """Returns 1 for male, 0 for female, or None when the name is malformed."""
    match = _UTKFACE_NAME.match(name)
    if match is None:
        return None
    return 1 - int(match["gender"])  # UTKFace: 0 = male.


def _utkface_source(path: Path):
    _require_dir(path)
    files = imageio.list_images(path, recursive=False)
    if not files:
        raise ValueError(f"no images in {path}")
    paths, male, skipped = [], [], []
    for file in files:
        label = parse_utkface_name(file.name)
        if label is None:
            skipped.append((str(file), "malformed UTKFace name (want age_gender_race_date.jpg)"))
            continue
        paths.append(file)
        male.append(label)
    paths, male, identity, unreadable = _checked(paths, male, [-1] * len(paths))
    if not paths:
        raise ValueError(f"no usable images in {path} ({len(skipped) + len(unreadable)} skipped, "
                         f"e.g. {(skipped + unreadable)[0][0]})")
    return dict(paths=paths, male=male, identity=identity, names=[Path(p).name for p in paths],
                skipped=tuple(skipped + unreadable))


def _folder_source(spec: DatasetSpec, config: DataConfig):
    root = spec.path
    _require_dir(root)
    if not spec.aligned:
        root = _aligned_copy(root, config)
    labels_file = root / "labels.csv"
    if not labels_file.exists() and spec.path and (spec.path / "labels.csv").exists():
        labels_file = spec.path / "labels.csv"
    if labels_file.exists():
        paths, male, identity, skipped = _read_labels_csv(labels_file, root)
    else:
        paths, male, identity, skipped = _read_identity_folders(root)
    if not paths:
        raise ValueError(f"no usable images in {spec.path} ({len(skipped)} skipped)")
    paths, male, identity, unreadable = _checked(paths, male, identity)
    names = [str(Path(p).relative_to(root)) for p in paths]
    return dict(paths=paths, male=male, identity=identity, names=names,
                skipped=tuple(skipped + unreadable))


def _read_labels_csv(labels_file: Path, root: Path):
    # utf-8-sig: a spreadsheet's byte order mark would otherwise hide the "file" column.
    with open(labels_file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "male"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{labels_file}: missing column(s) {sorted(missing)}; "
                             "want file,male[,identity]")
        paths, male, identity, skipped = [], [], [], []
        for row_number, row in enumerate(reader, start=2):
            where = f"{labels_file}:{row_number}"
            file = (row.get("file") or "").strip()
            try:
                label = int((row.get("male") or "").strip())
                person = int((row.get("identity") or "-1").strip() or -1)
                if label not in (0, 1):
                    raise ValueError(f"male must be 0 or 1, got {label}")
            except ValueError as error:
                skipped.append((where, f"bad label in row {row}: {error}"))
                continue
            path = root / file
            if not file or not path.is_file():
                skipped.append((where, f"file {path} named in labels.csv does not exist"))
                continue
            paths.append(path)
            male.append(label)
            identity.append(person)
    return paths, male, identity, skipped


def _read_identity_folders(root: Path):
    folders = sorted(d for d in root.iterdir() if d.is_dir())
    if not folders:
        raise ValueError(f"{root} has neither labels.csv nor <identity>/ sub-folders of photos")
    paths, identity = [], []
    for number, folder in enumerate(folders):
        for file in imageio.list_images(folder, recursive=False):
            paths.append(file)
            identity.append(number)
    # Folders name identities but not genders: gender is unknown (-1) for these photos.
    return paths, [-1] * len(paths), identity, []


def _aligned_copy(root: Path, config: DataConfig) -> Path:
    """Aligns a folder of photos once into a cache dir.

    The cache key covers the folder, the size, the detector (and its revision: a detector
    whose crops changed aligns again) and every photo's name, size and mtime, so adding,
    replacing or removing a photo aligns the folder again instead of reusing a stale copy.
    (The Haar detector adds nothing to the key: caches made before detectors could be
    chosen stay valid.)
    """
    from semiadv.align import aligner as align  # OpenCV cascades load lazily: only folder specs need them.

    detector_key = "" if config.align_detector == "haar" else f"|detector={config.align_detector}"
    revision = align.DETECTOR_REVISIONS[config.align_detector]
    if revision > 1:
        detector_key += f"@{revision}"
    fingerprint = hashlib.sha1(f"{root.resolve()}|{config.image_size}{detector_key}".encode())
    for file in imageio.list_images(root, recursive=True):
        stat = file.stat()
        fingerprint.update(f"|{file.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    key = fingerprint.hexdigest()[:12]
    base = Path(config.align_cache_dir or cache_root() / "aligned")
    target = base / f"{root.name}-{config.image_size}-{key}"
    if not (target / "align_report.json").exists():
        logging.info("Aligning the photos of %s into %s", root, target)
        align.align_folder(root, target, config.image_size, detector_name=config.align_detector)
    return target


def cache_root() -> Path:
    """Where aligned photos and decoded images are cached unless a config names a folder:
    `$SEMIADV_CACHE_DIR`, else `~/.cache/semiadv`."""
    return Path(os.environ.get("SEMIADV_CACHE_DIR") or Path.home() / ".cache" / "semiadv")


def _require_dir(path: Path) -> None:
    if not path.is_dir():
        raise ValueError(f"dataset folder {path} does not exist or is not a folder")


# ----------------------------------------------------------------------------------------------
# Records of one split


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
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    spec = parse_spec(config.dataset)
    if spec.kind == "synthetic":
        source = _synthetic_source(config)
    elif spec.kind == "utkface":
        source = _utkface_source(spec.path)
    elif spec.kind == "folder":
        source = _folder_source(spec, config)
    else:
        raise ValueError(f"{spec.kind} is a tensorflow-datasets spec: use make_dataset")
    _report_skipped(config.dataset, source["skipped"])
    identity = np.asarray(source["identity"], np.int64)
    splits = split_of(_split_keys(source["names"], identity), config.seed,
                      config.validation_fraction, config.test_fraction)
    chosen = np.flatnonzero(splits == split)
    if chosen.size == 0:
        raise ValueError(f"the {split} split of {config.dataset} is empty "
                         f"({len(splits)} usable examples in all)")
    records = Records(male=np.asarray(source["male"], np.int64)[chosen], identity=identity[chosen],
                      skipped=source["skipped"])
    if "images" in source:
        records.images = source["images"][chosen]
        return _share_images(records)
    records.paths = np.asarray(source["paths"])[chosen]
    if config.cache == "none":
        return records
    image_bytes = len(chosen) * config.image_size**2 * config.channels
    if config.cache == "memory" and image_bytes <= config.cache_megabytes * 2**20:
        records = _decode_into_memory(records, config)
        if records.image_tensor is None:  # Some files failed: the kept ones were copied.
            records = _share_images(records)
        return records
    return _decode_into_file(records, config)


def _share_images(records: Records) -> Records:
    """Moves the decoded images into one tensor that numpy and the pipelines share.

    `tf.constant` copies a numpy array, and a pipeline built from the array held a second
    copy of every decoded image (230 MB for UTKFace at 64x64) for as long as it lived.
    """
    with tf.init_scope():  # Eager even if first called while tracing.
        tensor = tf.constant(records.images)
    records.images = None  # Frees the numpy copy as soon as the caller lets go of it.
    # `_numpy()` is the tensor's own buffer (the public `numpy()` copies); the view keeps
    # the tensor alive and is read-only so nobody changes what the pipelines read.
    view = tensor._numpy()  # pylint: disable=protected-access
    view.flags.writeable = False
    records.images, records.image_tensor = view, tensor
    return records


def _report_skipped(dataset: str, skipped) -> None:
    if skipped:
        examples = "; ".join(f"{where}: {why}" for where, why in skipped[:3])
        logging.warning("%s: skipped %d unusable file(s), e.g. %s", dataset, len(skipped), examples)


def _decode_into_memory(records: Records, config: DataConfig) -> Records:
    """Decodes every photo once (in parallel) so epochs after the first cost no decoding."""
    # Decoded straight into the buffer of the tensor the pipelines will gather from: no
    # second full copy, not even for a moment (peak RSS).
    with tf.init_scope():
        tensor = tf.raw_ops.Empty(
            shape=[len(records), config.image_size, config.image_size, config.channels],
            dtype=tf.uint8, init=True)
    images = tensor._numpy()  # pylint: disable=protected-access

    def store(index, image):
        images[index] = image

    failed = _decode_each(records, config, store)
    if not failed:
        images.flags.writeable = False
        return Records(male=records.male, identity=records.identity, images=images,
                       skipped=records.skipped, image_tensor=tensor)
    return _kept(records, failed, images=images[_decoded_mask(records, failed)])


def _decode_each(records: Records, config: DataConfig, store) -> list[str]:
    """Decodes every photo in parallel, calling `store(indices, images)` on batches of them.

    Returns:
      The paths of the photos TensorFlow could not decode (reported, and left out of the
      batches), in order.
    """
    paths = tf.constant(records.paths)

    def decode(index):
        return index, _decode_file(paths[index], config.image_size, config.channels)

    dataset = _without_autotune(tf.data.Dataset.range(len(records))
                                .map(decode, num_parallel_calls=_PARALLEL_CALLS)
                                .ignore_errors())
    decoded = np.zeros(len(records), bool)
    for done, (index, image) in enumerate(dataset.batch(256).as_numpy_iterator(), start=1):
        store(index, image)
        decoded[index] = True
        if done % 20 == 0:
            logging.info("%s: decoded %d of %d photos", config.dataset, int(decoded.sum()),
                         len(records))
    failed = [str(records.paths[i]) for i in np.flatnonzero(~decoded)]
    _report_skipped(config.dataset, [(path, _UNDECODABLE) for path in failed])
    return failed


def _decoded_mask(records: Records, failed) -> np.ndarray:
    failed = set(failed)
    return np.array([str(path) not in failed for path in records.paths])


def _kept(records: Records, failed, **fields) -> Records:
    """`records` without the photos in `failed`, with `fields` (already without them) set."""
    kept = _decoded_mask(records, failed)
    return Records(male=records.male[kept], identity=records.identity[kept],
                   skipped=records.skipped + tuple((path, _UNDECODABLE) for path in failed),
                   **fields)


def _decode_into_file(records: Records, config: DataConfig) -> Records:
    """Decodes every photo once into a file of raw uint8 rows that the pipelines read.

    The file is named by a fingerprint of the photos (path, size, mtime) and the image shape,
    so a changed photo decodes the set again instead of reading a stale row. It is written
    under a temporary name and renamed when complete, its index (`.json`, which also records
    the photos that failed to decode) last: a killed run leaves no half-written cache behind
    that a later run could trust.
    """
    shape = (config.image_size, config.image_size, config.channels)
    fingerprint = hashlib.sha1(repr(shape).encode())
    for path in records.paths:
        stat = os.stat(path)
        fingerprint.update(f"|{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    base = Path(config.cache_dir or cache_root() / "decoded")
    target = base / f"{fingerprint.hexdigest()[:16]}-{len(records)}x{'x'.join(map(str, shape))}"
    index_file, rows_file = target.with_suffix(".json"), target.with_suffix(".u8")
    row_bytes = int(np.prod(shape))
    if not (index_file.exists() and rows_file.exists()
            and rows_file.stat().st_size == len(records) * row_bytes):
        base.mkdir(parents=True, exist_ok=True)
        logging.info("%s: decoding %d photos once into %s", config.dataset, len(records),
                     rows_file)
        partial = rows_file.with_name(f"{rows_file.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.truncate(len(records) * row_bytes)

                def store(index, image):
                    # ignore_errors drops failed photos: a batch's rows need not be contiguous.
                    for row, pixels in zip(index, image):
                        os.pwrite(handle.fileno(), pixels.tobytes(), int(row) * row_bytes)

                failed = _decode_each(records, config, store)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, rows_file)
        partial_index = index_file.with_name(f"{index_file.name}.{os.getpid()}.partial")
        partial_index.write_text(json.dumps({"shape": shape, "count": len(records),
                                             "failed": failed}) + "\n")
        os.replace(partial_index, index_file)
    else:
        failed = json.loads(index_file.read_text())["failed"]
        _report_skipped(config.dataset, [(path, _UNDECODABLE) for path in failed])
    kept = _decoded_mask(records, failed)
    return _kept(records, failed, paths=records.paths[kept], cache_file=str(rows_file),
                 rows=np.flatnonzero(kept).astype(np.int64))


def _read_row(path: bytes, row: np.int64, row_bytes: int) -> np.ndarray:
    """One row of a decoded-images file (pread: no file position shared between threads,
    and the bytes come from the page cache without being mapped into the process)."""
    with open(path, "rb", buffering=0) as handle:
        return np.frombuffer(os.pread(handle.fileno(), row_bytes, int(row) * row_bytes),
                             np.uint8)


def _decode_file(path, image_size: int, channels: int):
    """Reads, decodes and resizes one photo to uint8 [S, S, C]."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return resize_uint8(image, image_size, channels)


def resize_uint8(image, image_size: int, channels: int):
    """Resizes an RGB uint8 image (any size) to [S, S, C] uint8, converting to gray if asked."""
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


# ----------------------------------------------------------------------------------------------
# Pipelines


def _example_reader(records: Records, config: DataConfig):
    """Returns a function index -> example, reading from memory or from disk."""
    male = tf.constant(records.male)
    identity = tf.constant(records.identity)
    if records.images is not None:
        images = (records.image_tensor if records.image_tensor is not None
                  else tf.constant(records.images))
        read = lambda index: tf.gather(images, index)  # noqa: E731
    elif records.cache_file is not None:
        # Python reads the rows (TensorFlow has no ranged read); a 12 KB pread per face is
        # far below the cost of the step it feeds (BENCHMARKS.md).
        shape = (config.image_size, config.image_size, config.channels)
        rows = tf.constant(records.rows)

        def read(index):
            pixels = tf.numpy_function(
                functools.partial(_read_row, row_bytes=int(np.prod(shape))),
                [records.cache_file, rows[index]], tf.uint8, stateful=False)
            return tf.reshape(pixels, shape)
    else:
        paths = tf.constant(records.paths)
        read = lambda index: _decode_file(paths[index], config.image_size, config.channels)  # noqa: E731

    def example(index):
        return {"image": tf.image.convert_image_dtype(read(index), tf.float32),
                "male": male[index], "identity": identity[index]}

    return example


def training_indices(num_examples: int, seed: int, start_position: int = 0):
    """An endless stream of example indices: a fresh permutation of all examples every epoch.

    Position p of the stream is a pure function of (seed, p), so a run resumed at step s
    starts at position s * global_batch_size and reads what an uninterrupted run would.
    """
    positions = tf.data.Dataset.range(start_position, 2**62)

    def index_at(position):
        epoch = position // num_examples
        return tf.random.experimental.index_shuffle(
            position % num_examples, seed=tf.stack([tf.constant(seed, tf.int64), epoch]),
            max_index=num_examples - 1)

    return positions, index_at


def make_dataset(config: DataConfig, split: str, *, training: bool,
                 input_context: tf.distribute.InputContext | None = None,
                 start_step: int = 0, augment: str | None = None) -> tf.data.Dataset:
    """Builds the batched pipeline of one split.

    Args:
      config: the data config; `config.batch_size` is the global batch size.
      split: train, validation or test.
      training: endless, reshuffled each epoch, whole batches only; otherwise one ordered pass.
      input_context: from `strategy.distribute_datasets_from_function`; this pipeline then
        yields per-replica batches of its own slice of every global batch.
      start_step: training resumes at this global step (skips what earlier steps read).
      augment: training only: None; "flip" (a left-right flip, reported in the example's
        `flipped` so the step can flip the prototypes too); "views" (adds two independently
        augmented `view_a` / `view_b` of the face, the matcher's positive pair).

    Returns:
      A dataset of batched example dicts.
    """
    spec = parse_spec(config.dataset)
    if augment not in _AUGMENTERS:
        raise ValueError(f"unknown augment {augment!r}; use one of {sorted(_AUGMENTERS, key=str)}")
    if spec.kind in ("celeb_a", "lfw"):
        return _tfds_dataset(spec.kind, config, split, training=training,
                             input_context=input_context, start_step=start_step, augment=augment)
    records = load_records(config, split)
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    batch_size = (input_context.get_per_replica_batch_size(config.batch_size)
                  if input_context else config.batch_size)
    example = _example_reader(records, config)
    if training:
        if len(records) < config.batch_size:
            raise ValueError(f"the {split} split has {len(records)} examples, fewer than one "
                             f"global batch of {config.batch_size}")
        positions, index_at = training_indices(len(records), config.seed,
                                               start_step * config.batch_size)
        share = config.batch_size // pipelines
        # Pipeline k keeps positions [k*share, (k+1)*share) of every global batch: together the
        # pipelines read exactly the global batches of a single-pipeline run.
        positions = positions.filter(lambda p: (p % config.batch_size) // share == pipeline_id)
        augmenter = _AUGMENTERS[augment]

        def positioned_example(position):
            return augmenter(example(index_at(position)), config.seed, position)

        dataset = positions.map(positioned_example, num_parallel_calls=_PARALLEL_CALLS,
                                deterministic=True)
        dataset = dataset.batch(batch_size, drop_remainder=True)
    else:
        dataset = tf.data.Dataset.range(len(records))
        if pipelines > 1:
            dataset = dataset.shard(pipelines, pipeline_id)
        dataset = dataset.map(example, num_parallel_calls=_PARALLEL_CALLS, deterministic=True)
        dataset = dataset.batch(batch_size)
    return _without_autotune(dataset.prefetch(_PREFETCH_BATCHES))


def _without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning model thread off (see `_PARALLEL_CALLS`)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def distribute(strategy: tf.distribute.Strategy, config: DataConfig, split: str, *,
               training: bool, start_step: int = 0, augment: str | None = None):
    """A distributed dataset of `split` for `strategy`, sharded through its input contexts."""
    return strategy.distribute_datasets_from_function(
        lambda context: make_dataset(config, split, training=training, input_context=context,
                                     start_step=start_step, augment=augment))


# ----------------------------------------------------------------------------------------------
# Augmentation. Random numbers come from (seed, stream position), never from a replica's RNG,
# so a batch is augmented the same however it is split over replicas and workers.


def _no_augment(example, seed, position):
    del seed, position
    return example


def _flip(example, seed, position):
    coin = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), position]))
    flipped = coin < 0.5
    image = tf.where(flipped, tf.reverse(example["image"], axis=[1]), example["image"])
    flipped_example = {**example, "image": image, "flipped": flipped}
    if "landmarks" in example:
        # The landmarks follow the face: x mirrors (pixel centres at integers) and the left
        # eye / mouth corner of the mirrored face is the old right one.
        landmarks = example["landmarks"]
        width = tf.cast(tf.shape(image)[1], landmarks.dtype)
        mirrored = tf.stack([width - 1 - landmarks[:, 0], landmarks[:, 1]], axis=-1)
        mirrored = tf.gather(mirrored, _MIRRORED_LANDMARKS)
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


def _views(example, seed, position):
    base = tf.stack([tf.cast(seed, tf.int64) + 7919, position])
    view_a, view_b = (augment_view(example["image"], s)
                      for s in tf.unstack(tf.random.experimental.stateless_split(base, 2)))
    return {**example, "view_a": view_a, "view_b": view_b}


_AUGMENTERS = {None: _no_augment, "flip": _flip, "views": _views}


def has_identities(config: DataConfig) -> bool:
    """Whether the spec labels identities (else the matcher learns from augmented pairs)."""
    spec = parse_spec(config.dataset)
    if spec.kind in ("celeb_a", "lfw"):
        return spec.kind == "lfw"
    return bool((load_records(config, "train").identity >= 0).any())


def read_split(config: DataConfig, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """Reads one split (or its first `limit` examples) into numpy arrays, in a fixed order."""
    dataset = make_dataset(config, split, training=False)
    if limit is not None:
        dataset = dataset.unbatch().take(limit).batch(config.batch_size)
    parts = list(dataset.as_numpy_iterator())
    if not parts:
        raise ValueError(f"the {split} split of {config.dataset} is empty")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


# ----------------------------------------------------------------------------------------------
# tensorflow-datasets specs


_TFDS_SPLITS = {
    # CelebA's own partition is disjoint by identity.
    "celeb_a": {"train": "train", "validation": "validation", "test": "test"},
}


def _tfds_dataset(name: str, config: DataConfig, split: str, *, training: bool,
                  input_context=None, start_step: int = 0, augment=None) -> tf.data.Dataset:
    import tensorflow_datasets as tfds  # Heavy import: only tfds specs pay for it.

    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=config.seed)
    if name == "celeb_a":
        dataset = tfds.load("celeb_a", split=_TFDS_SPLITS[name][split], data_dir=config.tfds_data_dir,
                            shuffle_files=training, read_config=read_config)
        dataset = dataset.map(functools.partial(_celeb_a_example, config=config),
                              num_parallel_calls=_PARALLEL_CALLS)
    else:
        # LFW ships one split: hold out identities by the same stable hash as file specs.
        dataset = tfds.load("lfw", split="train", data_dir=config.tfds_data_dir,
                            shuffle_files=training, read_config=read_config)
        dataset = dataset.filter(functools.partial(_in_lfw_split, config=config, split=split))
        dataset = dataset.map(functools.partial(_lfw_example, config=config),
                              num_parallel_calls=_PARALLEL_CALLS)
    batch_size = (input_context.get_per_replica_batch_size(config.batch_size)
                  if input_context else config.batch_size)
    if training:
        dataset = dataset.shuffle(4096, seed=config.seed).repeat().enumerate()
        augmenter = _AUGMENTERS[augment]
        dataset = dataset.map(lambda position, example: augmenter(example, config.seed, position),
                              num_parallel_calls=_PARALLEL_CALLS)
        dataset = dataset.batch(batch_size, drop_remainder=True)
        # tfds order is not index-addressable: a resumed run skips what earlier steps read.
        dataset = dataset.skip(start_step)
    else:
        dataset = dataset.batch(batch_size)
    return _without_autotune(dataset.prefetch(_PREFETCH_BATCHES))


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
    return {"image": tf.image.convert_image_dtype(resize_uint8(image, config.image_size,
                                                               config.channels), tf.float32),
            "male": tf.constant(-1, tf.int64),
            "identity": tf.strings.to_hash_bucket_fast(example["label"], 2**62)}


CELEB_A_LANDMARKS = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")
# Which landmark each one becomes in a left-right mirror image of the face.
_MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)


def _celeb_a_example(example, *, config: DataConfig):
    from semiadv.align import tf_warp as align_tf  # Landmark alignment: TF ops, here only for CelebA.

    landmarks = tf.stack([tf.stack([example["landmarks"][f"{name}_x"],
                                    example["landmarks"][f"{name}_y"]])
                          for name in CELEB_A_LANDMARKS])
    image, aligned_landmarks = align_tf.align_by_eyes(
        example["image"], tf.cast(landmarks, tf.float32), config.image_size)
    image = resize_uint8(image, config.image_size, config.channels)
    return {"image": tf.image.convert_image_dtype(image, tf.float32),
            "male": tf.cast(example["attributes"]["Male"], tf.int64),
            "identity": tf.constant(-1, tf.int64),
            "landmarks": aligned_landmarks}
