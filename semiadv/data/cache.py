"""Where caches live, and the caches that decode each photo once.

Photos are decoded and resized once, then either kept in memory in one tensor the pipelines
gather from, or written as raw uint8 rows to a file the pipelines read row by row.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from semiadv.config import DataConfig
from semiadv.data import image_ops
from semiadv.data import pipeline_options
from semiadv.data import sources
from semiadv.utils import files

# Why a photo that passed the file checks is left out after all.
UNDECODABLE = "TensorFlow could not decode it"


def cache_root() -> Path:
    """Where aligned photos, decoded images and converted weights are cached unless a config
    names a folder: `$SEMIADV_CACHE_DIR`, else `~/.cache/semiadv`."""
    return Path(os.environ.get("SEMIADV_CACHE_DIR") or Path.home() / ".cache" / "semiadv")


def share_images(images: np.ndarray) -> tuple[np.ndarray, tf.Tensor]:
    """Moves decoded images into one tensor that numpy and the pipelines share.

    `tf.constant` copies a numpy array, and a pipeline built from the array would hold a
    second copy of every decoded image for as long as it lived. The caller drops `images`
    and keeps the returned view instead.

    Returns:
      (a read-only numpy view of the tensor's buffer, the tensor).
    """
    with tf.init_scope():  # Eager even if first called while tracing.
        tensor = tf.constant(images)
    # `_numpy()` is the tensor's own buffer (the public `numpy()` copies); the view keeps
    # the tensor alive and is read-only so nobody changes what the pipelines read.
    view = tensor._numpy()  # pylint: disable=protected-access
    view.flags.writeable = False
    return view, tensor


def decoded_mask(paths, failed) -> np.ndarray:
    """Bool [N]: which of `paths` decoded (are not in `failed`)."""
    failed = set(failed)
    return np.array([str(path) not in failed for path in paths])


def decode_photos(paths, config: DataConfig, store) -> list[str]:
    """Decodes every photo in parallel, calling `store(indices, images)` on batches of them.

    Returns:
      The paths of the photos TensorFlow could not decode (reported, and left out of the
      batches), in order.
    """
    path_tensor = tf.constant(paths)

    def decode(index):
        return index, image_ops.decode_photo(path_tensor[index], config.image_size,
                                             config.channels)

    dataset = pipeline_options.without_autotune(
        tf.data.Dataset.range(len(paths))
        .map(decode, num_parallel_calls=pipeline_options.PARALLEL_CALLS)
        .ignore_errors())
    decoded = np.zeros(len(paths), bool)
    for done, (index, image) in enumerate(dataset.batch(256).as_numpy_iterator(), start=1):
        store(index, image)
        decoded[index] = True
        if done % 20 == 0:
            logging.info("%s: decoded %d of %d photos", config.dataset, int(decoded.sum()),
                         len(paths))
    failed = [str(paths[i]) for i in np.flatnonzero(~decoded)]
    sources.report_skipped(config.dataset, [(path, UNDECODABLE) for path in failed])
    return failed


def decode_into_memory(paths, config: DataConfig) -> tuple[np.ndarray, tf.Tensor, list[str]]:
    """Decodes every photo once (in parallel) so epochs after the first cost no decoding.

    Returns:
      (read-only uint8 [K, S, S, C] images of the K photos that decoded, the tensor they are a
      view of, the paths of the photos that failed).
    """
    # Decoded straight into the buffer of the tensor the pipelines will gather from: no
    # second full copy, not even for a moment (peak RSS).
    with tf.init_scope():
        tensor = tf.raw_ops.Empty(
            shape=[len(paths), config.image_size, config.image_size, config.channels],
            dtype=tf.uint8, init=True)
    images = tensor._numpy()  # pylint: disable=protected-access

    def store(index, image):
        images[index] = image

    failed = decode_photos(paths, config, store)
    if failed:  # The kept images move into a tensor of their own.
        return (*share_images(images[decoded_mask(paths, failed)]), failed)
    images.flags.writeable = False
    return images, tensor, failed


def decode_into_file(paths, config: DataConfig) -> tuple[str, list[str]]:
    """Decodes every photo once into a file of raw uint8 rows that the pipelines read.

    The file is named by a fingerprint of the photos (path, size, mtime) and the image shape,
    so a changed photo decodes the set again instead of reading a stale row. Row i holds photo
    i (zeros if it failed). The rows file and then its index (`.json`, which also records the
    photos that failed to decode) are written atomically: a killed run leaves no half-written
    cache behind that a later run could trust.

    Returns:
      (the rows file, the paths of the photos that failed to decode).
    """
    shape = (config.image_size, config.image_size, config.channels)
    fingerprint = hashlib.sha1(repr(shape).encode())
    for path in paths:
        stat = os.stat(path)
        fingerprint.update(f"|{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    base = Path(config.cache_dir or cache_root() / "decoded")
    target = base / f"{fingerprint.hexdigest()[:16]}-{len(paths)}x{'x'.join(map(str, shape))}"
    index_file, rows_file = target.with_suffix(".json"), target.with_suffix(".u8")
    row_bytes = int(np.prod(shape))
    if (index_file.exists() and rows_file.exists()
            and rows_file.stat().st_size == len(paths) * row_bytes):
        failed = json.loads(index_file.read_text())["failed"]
        sources.report_skipped(config.dataset, [(path, UNDECODABLE) for path in failed])
        return str(rows_file), failed
    logging.info("%s: decoding %d photos once into %s", config.dataset, len(paths), rows_file)
    with files.atomic_path(rows_file, suffix=".partial") as partial:
        with open(partial, "wb") as handle:
            handle.truncate(len(paths) * row_bytes)

            def store(index, image):
                # ignore_errors drops failed photos: a batch's rows need not be contiguous.
                for row, pixels in zip(index, image):
                    os.pwrite(handle.fileno(), pixels.tobytes(), int(row) * row_bytes)

            failed = decode_photos(paths, config, store)
    files.write_text_atomically(
        index_file, json.dumps({"shape": shape, "count": len(paths), "failed": failed}) + "\n")
    return str(rows_file), failed


def read_row(path: bytes, row: np.int64, row_bytes: int) -> np.ndarray:
    """One row of a decoded-images file (pread: no file position shared between threads,
    and the bytes come from the page cache without being mapped into the process)."""
    with open(path, "rb", buffering=0) as handle:
        return np.frombuffer(os.pread(handle.fileno(), row_bytes, int(row) * row_bytes),
                             np.uint8)
