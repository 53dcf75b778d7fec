"""One photo as an export's input: read, aligned (or only resized), in [0, 1]; or, for the
photo output, each of its faces as an export's input, with the decoded photo to write back.

The per-photo step of semiadv-perturb (`semiadv.perturb.folder`) and of the Beam pipeline's
workers (`semiadv.perturb.beam`), so both give the same faces and the same report entries.
Reading and aligning is `semiadv.perturb.photoprep` (no TensorFlow); the resize to the export's
input is the training pipeline's, in TensorFlow.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from semiadv.data import image_ops
from semiadv.perturb import photoprep


@functools.lru_cache(maxsize=None)
def _resizer(size, channels):
    """The training pipeline's resize (`image_ops.resize_uint8`) as one traced function: run
    eagerly op by op it costs more per photo than the perturbation itself."""
    return tf.function(lambda rgb: image_ops.resize_uint8(rgb, size, channels),
                       input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])


def _to_model_input(rgb, image_shape):
    """The export's input from a uint8 crop (or whole photo): resized, float32 in [0, 1]."""
    size, _, channels = image_shape
    if channels == 3 and rgb.shape == (size, size, 3):
        # An aligned crop is at the export's size already, and the resize of an image to its
        # own size gives it back unchanged (tested); calling the traced function anyway
        # cost 0.6-1.4 ms of CPU per photo, a third to most of the SAN's own share
        # (BENCHMARKS.md §9j).
        face = rgb
    else:
        face = _resizer(size, channels)(rgb).numpy()
    return face.astype(np.float32) / 255.0


def finish_prepared(prepared, image_shape):
    """(face, entry) from a `photoprep.prepare_crop` result (rgb, entry); never raises."""
    rgb, entry = prepared
    if rgb is None:
        return None, entry
    try:
        return _to_model_input(rgb, image_shape), entry
    except Exception as error:  # noqa: BLE001  A batch job goes on past any one bad photo.
        return None, photoprep.error_entry(error)


def prepare_photo(path, image_shape, align, data=None):
    """Reads, aligns (or only resizes) one photo for the export; never raises.

    Args:
        path: The photo's file (named in error messages; read only when `data` is None).
        image_shape: The export's (H, W, C), from `semiadv.export.locate.load_signature`.
        align: Detect and align the face; False only resizes the whole photo.
        data: The file's bytes when they were read elsewhere (any filesystem).

    Returns:
        (face, entry): face is float32 [H, W, C] in [0, 1], or None when the photo is
        skipped; entry is its report entry so far (`status` and `error` when skipped,
        `align_status` when aligned).
    """
    try:
        rgb, entry = photoprep.read_and_align(path, image_shape[0], align, data=data)
    except Exception as error:  # noqa: BLE001  A batch job goes on past any one bad photo.
        return None, photoprep.error_entry(error)
    return finish_prepared((rgb, entry), image_shape)


def finish_photo_faces(prepared, image_shape):
    """(PhotoFaces with the export's inputs as faces, entry) from a
    `photoprep.prepare_faces` result; never raises."""
    photo_faces, entry = prepared
    if photo_faces is None:
        return None, entry
    try:
        photo_faces.faces = [_to_model_input(crop, image_shape) for crop in photo_faces.faces]
    except Exception as error:  # noqa: BLE001  A batch job goes on past any one bad photo.
        return None, photoprep.error_entry(error)
    return photo_faces, entry


def prepare_photo_faces(path, image_shape, max_faces, keep_metadata=False, data=None):
    """Reads one photo to write back and prepares each face for the export; never raises.

    Args:
        path: The photo's file (named in error messages; read only when `data` is None).
        image_shape: The export's (H, W, C).
        max_faces: The most faces edited, largest first.
        keep_metadata: Also keep the file's metadata blocks.
        data: The file's bytes when they were read elsewhere (any filesystem).

    Returns:
        (photo_faces, entry): a `photoprep.PhotoFaces` whose faces are float32 [H, W, C] in
        [0, 1], or None when the photo is skipped; its report entry so far.
    """
    try:
        prepared = photoprep.read_and_align_faces(path, image_shape[0], max_faces,
                                                  keep_metadata, data=data)
    except Exception as error:  # noqa: BLE001  A batch job goes on past any one bad photo.
        return None, photoprep.error_entry(error)
    return finish_photo_faces(prepared, image_shape)
