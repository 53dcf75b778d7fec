"""The per-photo half of `semiadv-perturb` that needs no TensorFlow: read, decode, align.

`semiadv.perturb.faces.prepare_photo` runs it on the caller's threads;
`semiadv.perturb.folder.perturb_folder` with `pool="process"` runs it in worker processes
(`semiadv.utils.parallel.process_map`), which import only this module, OpenCV, numpy and
(when aligning with it) dlib.
"""

from __future__ import annotations

import numpy as np

from semiadv.utils import imageio


def to_uint8(image) -> np.ndarray:
    """An image as uint8 RGB [H, W, 3] (floats in [0, 1] are scaled; gray is repeated)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def read_and_align(path, size: int, align: bool, detector_name: str | None = None,
                   data: bytes | None = None):
    """Reads one photo and, when `align`, crops its face to size x size.

    Args:
        path: The photo's file (named in error messages; read only when `data` is None).
        size: The side of the aligned crop.
        align: Detect and align the face; False returns the whole decoded photo.
        detector_name: The face detector (`registry.DETECTORS` of `semiadv.align`; None: the
            calling thread's `registry.default_detector()`).
        data: The file's bytes when they were read elsewhere.

    Returns:
        (rgb, entry): rgb is uint8 [H, W, 3] (the crop, or the whole photo without
        `align`), or None when the photo is skipped; entry is its report entry so far
        (`status` and `error` when skipped, `align_status` when aligned).

    Raises:
        Whatever the detector raises on an unexpected input (`prepare_crop` does not).
    """
    try:
        rgb = imageio.read_image(path) if data is None else imageio.decode_image(data, path)
    except imageio.ImageReadError as error:
        return None, {"status": "unreadable", "error": str(error)}
    entry = {}
    if align:
        from semiadv.align import face, registry  # The detectors load only when aligning.

        result = face.align_face(rgb, size, registry.default_detector(detector_name))
        status = str(getattr(result.status, "value", result.status))
        entry["align_status"] = status
        if getattr(result, "crop", None) is None or status == "no_face":
            entry.update(status="no_face")
            return None, entry
        rgb = to_uint8(result.crop)
    return rgb, entry


def error_entry(error: BaseException) -> dict:
    """The report entry of a photo whose preparation raised."""
    return {"status": "error", "error": f"{type(error).__name__}: {error}"}


def prepare_crop(path, size: int, align: bool, detector_name: str | None = None):
    """`read_and_align` that never raises: a batch job goes on past any one bad photo."""
    try:
        return read_and_align(path, size, align, detector_name)
    except Exception as error:  # noqa: BLE001
        return None, error_entry(error)


def start_worker(detector_name: str | None) -> None:
    """A worker process's initializer: builds its detector once, before the first photo.

    A detector that cannot be built (e.g. dlib not installed) then fails the start of the
    pool, not every photo.
    """
    if detector_name is not None:
        from semiadv.align import registry

        registry.default_detector(detector_name)


def crashed(path, reason: str):
    """The (rgb, entry) of a photo whose worker process died while preparing it."""
    return None, {"status": "error", "error": f"{path}: {reason}"}
