"""The per-photo half of `semiadv-perturb` that needs no TensorFlow: read, decode, align.

`semiadv.perturb.faces.prepare_photo` runs it on the caller's threads;
`semiadv.perturb.folder.perturb_folder` with `pool="process"` runs it in worker processes
(`semiadv.utils.parallel.process_map`), which import only this module, OpenCV, numpy and
(when aligning with it) dlib.

Two kinds of result: an aligned crop (or whole photo) for the crop output (`read_and_align`),
or, for the photo output, the decoded file to write back with every face's crop and
alignment warp (`read_and_align_faces`, a `PhotoFaces`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from semiadv.utils import imageio
from semiadv.utils import metadata as metadata_lib


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


@dataclasses.dataclass
class PhotoFaces:
    """A photo to edit and write back (the photo output of `semiadv-perturb`).

    Attributes:
        pixels: The decoded file, as `imageio.decode_unchanged` returns it (gray, BGR or
            BGRA; uint8 or uint16): what the edit is added to and what is written back.
        faces: Per face, largest first: its aligned crop (uint8 RGB [S, S, 3]); replaced by
            the export's input (float32 [S, S, C]) by `semiadv.perturb.faces`.
        transforms: Per face, the [2, 3] photo-to-crop matrix of its alignment.
        metadata: The file's metadata blocks to copy (`semiadv.utils.metadata.extract`):
            its ICC colour profile, and everything else when asked for.
    """

    pixels: np.ndarray
    faces: list
    transforms: list
    metadata: list


def read_and_align_faces(path, size: int, max_faces: int, keep_metadata: bool = False,
                         detector_name: str | None = None, data: bytes | None = None):
    """Reads one photo to be written back, and aligns each of its faces to size x size.

    Args:
        path: The photo's file (named in error messages; read only when `data` is None).
        size: The side of the aligned crops.
        max_faces: The most faces aligned, largest first.
        keep_metadata: Extract all the file's metadata blocks, not only its ICC profile.
        detector_name: As for `read_and_align`.
        data: The file's bytes when they were read elsewhere.

    Returns:
        (PhotoFaces, entry), or (None, entry) when the photo is skipped: "unreadable",
        "unsupported" (an animation, whose other frames would be lost), "too_large" (a
        JPEG over `imageio.DEFAULT_MAX_PIXELS` with a face: only a reduced decode fits) or
        "no_face". The
        entry has `align_status` (of the largest face) when a face was looked for, and
        `note` for a CMYK JPEG (written back as RGB).

    Raises:
        Whatever the detector raises on an unexpected input (`prepare_faces` does not).
    """
    from semiadv.align import face, registry  # The detectors load only when aligning.

    try:
        data = imageio.read_bytes(path) if data is None else data
        header = imageio.inspect_image(data, path)
        if header.animated:
            return None, {"status": "unsupported",
                          "error": f"cannot write back {str(path)!r}: animated "
                                   f"{header.format.upper()} (only its first frame would be "
                                   "kept); convert its frames to still photos first"}
        pixels = imageio.decode_unchanged(data, path)
        rgb = imageio.to_rgb(path, pixels)
    except imageio.ImageTooLargeError as error:
        return _too_large(data, path, size, max_faces, detector_name, error)
    except imageio.ImageReadError as error:
        return None, {"status": "unreadable", "error": str(error)}
    entry = {}
    cmyk = header.format == "jpeg" and header.components == 4
    if cmyk:
        entry["note"] = "CMYK JPEG, written back as RGB"
    results = face.align_faces(rgb, size, registry.default_detector(detector_name), max_faces)
    entry["align_status"] = str(results[0].status) if results else "no_face"
    if not results:
        entry.update(status="no_face")
        return None, entry
    return PhotoFaces(pixels=pixels, faces=[to_uint8(result.crop) for result in results],
                      transforms=[np.asarray(result.transform) for result in results],
                      metadata=metadata_lib.extract(data, everything=keep_metadata,
                                                    colour_profile=not cmyk)), entry


def _too_large(data, path, size, max_faces, detector_name, error):
    """The entry of a photo too large to write back: "no_face" when its reduced decode has
    none (as the crop output says), else "too_large" with the reason."""
    from semiadv.align import face, registry

    rgb = imageio.decode_image(data, path)  # Reduced to fit, as the crop output reads it.
    if not face.align_faces(rgb, size, registry.default_detector(detector_name), max_faces):
        return None, {"align_status": "no_face", "status": "no_face"}
    return None, {"status": "too_large", "error": f"{error}; its faces were not edited"}


def prepare_faces(path, size: int, max_faces: int, keep_metadata: bool = False,
                  detector_name: str | None = None):
    """`read_and_align_faces` that never raises: a batch job goes on past any one bad photo."""
    try:
        return read_and_align_faces(path, size, max_faces, keep_metadata, detector_name)
    except Exception as error:  # noqa: BLE001
        return None, error_entry(error)


def unread_photo_entry(path) -> dict:
    """The report entry of a photo in a format semiadv does not read (a GIF, TIFF, HEIF:
    `imageio.UNREAD_PHOTO_EXTENSIONS`), listed so that no photo is passed over silently."""
    kind = str(path).rsplit(".", 1)[-1].upper()
    return {"status": "unsupported",
            "error": f"cannot read image {str(path)!r}: {kind} is not read (only "
                     f"{', '.join(imageio.IMAGE_EXTENSIONS)}); convert it to PNG or JPEG "
                     "first (an animation frame by frame)"}


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
