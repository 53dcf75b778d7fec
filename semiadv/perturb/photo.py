"""The SAN's edit carried back onto the whole photo, at the photo's own resolution.

The residual autoencoder's output on an aligned crop is the crop plus a smooth change. For each
face, that change (perturbed - input, at the model's size) is warped back through the inverse
of the face's alignment warp (`semiadv.align.face.AlignResult.transform`, photo to crop),
upsampled with linear interpolation, faded out towards the face's border by a soft mask (a
feathered ellipse around the canonical face region of the crop: `face_mask`), and added to
the photo. Pixels outside every face's mask keep their exact values; where two masks
overlap, their changes are averaged by their weights and applied with the larger mask's
weight, rather than added twice.

`edit_photo` does it all for one photo given any function from crops to perturbed crops (a
loaded signature, or a TF Serving REST or gRPC call: docs/serving.md); `edit_pixels` is the
write-back alone, which `semiadv.perturb.folder` applies to the decoded file (gray, alpha and
16-bit samples kept). No TensorFlow: OpenCV and numpy only.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from semiadv.utils import imageio
from semiadv.utils import metadata as metadata_lib

# The face region of an aligned crop (eyes on `geometry.canonical_eye_points`, framed like
# UTKFace's crops), as an ellipse in fractions of the crop side: from the hairline to the
# chin, cheek to cheek. Its centre sits below the eyes' midpoint (0.485, 0.2975), about where
# the nose is.
FACE_ELLIPSE_CENTRE = (0.485, 0.52)
FACE_ELLIPSE_AXES = (0.40, 0.46)
# The mask falls from 1 to 0 over this outer share of the ellipse's radius, so the edit has no
# visible edge on the photo.
FACE_FEATHER = 0.3
# Luma weights (ITU-R BT.601, as OpenCV's RGB2GRAY) for writing a colour change into a gray
# photo.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@functools.lru_cache(maxsize=8)
def face_mask(size: int) -> np.ndarray:
    """The soft face mask of an aligned size x size crop: float32 [size, size] in [0, 1],
    1 inside the face, 0 outside the ellipse, smoothly in between (read-only)."""
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size  # Continuous coordinates.
    (cx, cy), (ax, ay) = FACE_ELLIPSE_CENTRE, FACE_ELLIPSE_AXES
    radius = np.sqrt(((centres[None, :] - cx) / ax) ** 2 + ((centres[:, None] - cy) / ay) ** 2)
    ramp = np.clip((1.0 - radius) / FACE_FEATHER, 0.0, 1.0)
    mask = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # Smoothstep: no kink.
    mask.setflags(write=False)
    return mask


def _footprint(transform: np.ndarray, size: int, shape) -> Optional[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1): the photo's pixels the crop square covers, clipped to the photo;
    None when it covers none (a face wholly outside the photo cannot occur, but a degenerate
    transform can)."""
    to_photo = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5],
                        [-0.5, size - 0.5]])
    points = corners @ to_photo[:, :2].T + to_photo[:, 2]
    if not np.all(np.isfinite(points)):
        return None
    height, width = shape[:2]
    x0, y0 = (max(0, int(math.floor(v)) - 1) for v in points.min(axis=0))
    x1, y1 = min(width, int(math.ceil(points[:, 0].max())) + 2), \
        min(height, int(math.ceil(points[:, 1].max())) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def _warped_to_photo(image: np.ndarray, transform: np.ndarray, box) -> np.ndarray:
    """`image` (in crop coordinates) resampled at the photo's pixels of `box`; 0 outside
    the crop, so the photo there is untouched."""
    x0, y0, x1, y1 = box
    matrix = np.asarray(transform, np.float64).copy()
    # Photo pixel (x0 + u, y0 + v) is crop point transform @ (x0 + u, y0 + v, 1).
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(image, matrix, (x1 - x0, y1 - y0),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def photo_change(shape, changes: Sequence[np.ndarray], transforms: Sequence[np.ndarray]):
    """The faces' changes on the photo's pixel grid.

    Args:
        shape: The photo's (H, W, ...).
        changes: Per face, float [S, S, C] (C 1 or 3, RGB), perturbed - input in [0, 1] units.
        transforms: Per face, the [2, 3] photo-to-crop matrix of its alignment.

    Returns:
        (box, change, weight), or None when no face covers a pixel: box is (x0, y0, x1, y1),
        the union of the faces' footprints; change float32 [y1 - y0, x1 - x0, 3] (RGB, [0, 1]
        units), what is added to the photo there (the changes faded by their masks), and
        weight float32 [y1 - y0, x1 - x0], the masks' sum; change is exactly 0 where weight
        is 0.
    """
    parts = []
    for change, transform in zip(changes, transforms):
        change = np.asarray(change, np.float32)
        if change.ndim == 2:
            change = change[:, :, None]
        if change.shape[2] == 1:
            change = np.repeat(change, 3, axis=2)
        size = change.shape[0]
        box = _footprint(transform, size, shape)
        if box is not None:
            mask = face_mask(size)
            # One warp for both: the masked change and the mask (a 4-channel image).
            weighted = np.dstack([change * mask[:, :, None], mask])
            parts.append((weighted, transform, box))
    if not parts:
        return None
    x0, y0 = min(p[2][0] for p in parts), min(p[2][1] for p in parts)
    x1, y1 = max(p[2][2] for p in parts), max(p[2][3] for p in parts)
    if len(parts) == 1:  # The usual case, without the overlap's arithmetic.
        warped = _warped_to_photo(*parts[0])
        return (x0, y0, x1, y1), warped[:, :, :3], warped[:, :, 3]
    total = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    weight = np.zeros((y1 - y0, x1 - x0), np.float32)
    opacity = np.zeros((y1 - y0, x1 - x0), np.float32)
    for weighted, transform, box in parts:
        warped = _warped_to_photo(weighted, transform, box)
        rows, cols = slice(box[1] - y0, box[3] - y0), slice(box[0] - x0, box[2] - x0)
        total[rows, cols] += warped[:, :, :3]
        weight[rows, cols] += warped[:, :, 3]
        np.maximum(opacity[rows, cols], warped[:, :, 3], out=opacity[rows, cols])
    # Alone, a face's change times its mask; where masks overlap, the changes' mean weighted
    # by the masks, times the largest mask (two detections of one face edit it once).
    total *= (opacity / np.where(weight > 0, weight, 1.0))[:, :, None]
    return (x0, y0, x1, y1), total, weight


def edit_pixels(pixels: np.ndarray, changes: Sequence[np.ndarray],
                transforms: Sequence[np.ndarray], order: str = "rgb") -> np.ndarray:
    """A copy of `pixels` with the faces' changes added (see the module docstring).

    Args:
        pixels: The photo: [H, W] gray, [H, W, 3] colour or [H, W, 4] colour + alpha,
            uint8 or uint16 (the change is scaled to the sample range); alpha is kept.
        changes: Per face, float [S, S, C] (C 1 or 3, RGB), perturbed - input, [0, 1] units.
        transforms: Per face, the [2, 3] photo-to-crop matrix of its alignment.
        order: "rgb" or "bgr" (OpenCV's order, as `imageio.decode_unchanged` returns).

    Returns:
        The edited copy: same shape and dtype; pixels outside every mask equal the input's.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim not in (2, 3) or (
            pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4)):
        raise ValueError(f"pixels must be uint8 or uint16 [H, W(, 1|3|4)], got {pixels.dtype} "
                         f"{pixels.shape}")
    if order not in ("rgb", "bgr"):
        raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
    edited = pixels.copy()
    found = photo_change(pixels.shape, changes, transforms)
    if found is None:
        return edited
    (x0, y0, x1, y1), change, _ = found
    change *= float(np.iinfo(pixels.dtype).max)
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        change = change @ _LUMA
        if pixels.ndim == 3:
            change = change[:, :, None]
        region = edited[y0:y1, x0:x1]
    else:
        change = change if order == "rgb" else change[:, :, ::-1]
        region = edited[y0:y1, x0:x1, :3]
    # In integers: a pixel plus a change of exactly 0 (outside every mask) is the same
    # pixel, bit for bit; a float round trip would only be so by care.
    wide = np.int16 if pixels.dtype == np.uint8 else np.int32
    summed = region.astype(wide)
    summed += np.rint(change).astype(wide)
    np.clip(summed, 0, np.iinfo(pixels.dtype).max, out=summed)
    region[...] = summed
    return edited


def encode_edited(name, pixels: np.ndarray, changes: Sequence[np.ndarray],
                  transforms: Sequence[np.ndarray], metadata: Sequence[bytes] = (),
                  jpeg_quality: int = imageio.DEFAULT_JPEG_QUALITY) -> bytes:
    """The edited photo's file: `edit_pixels` on a `imageio.decode_unchanged` array (BGR),
    encoded in the format of `name`'s extension, with `metadata` blocks
    (`semiadv.utils.metadata.extract` of the input; none: the file has no metadata)."""
    edited = edit_pixels(pixels, changes, transforms, order="bgr")
    return metadata_lib.insert(imageio.encode_unchanged(name, edited, jpeg_quality),
                               list(metadata))


def edit_photo(rgb: np.ndarray, perturb: Callable[[np.ndarray], np.ndarray], image_size: int,
               channels: int = 3, detector=None, max_faces: int | None = None):
    """Edits every face of a photo with any perturber of aligned crops.

    Args:
        rgb: The photo, uint8 [H, W, 3] RGB (e.g. `semiadv.utils.imageio.read_image`).
        perturb: Maps float32 [N, S, S, C] crops in [0, 1] to the perturbed crops of the
            same shape (numpy or anything `np.asarray` takes): a loaded signature's
            `lambda x: signature(image=x)["perturbed"]`, or a TF Serving call
            (docs/serving.md). Called once, with every face of the photo.
        image_size: S, the export's input size (a TF Serving client reads it from the
            model's metadata, `saved_model_cli`, or knows it).
        channels: C, the export's channels (1: the crops are made gray).
        detector: A `semiadv.align` FaceDetector (default: the thread's default detector).
        max_faces: The most faces edited (default `semiadv.align.face.DEFAULT_MAX_FACES`),
            largest first.

    Returns:
        (edited, faces): the edited photo (uint8 [H, W, 3], a copy) and the
        `semiadv.align.face.AlignResult` of each face edited (none: the photo is returned
        unchanged, which a privacy tool should report rather than share).
    """
    from semiadv.align import face as face_lib  # Detectors load only when aligning.

    rgb = np.asarray(rgb)
    max_faces = face_lib.DEFAULT_MAX_FACES if max_faces is None else max_faces
    aligned = face_lib.align_faces(rgb, image_size, detector, max_faces)
    if not aligned:
        return rgb.copy(), []
    crops = model_inputs([result.crop for result in aligned], channels)
    perturbed = np.asarray(perturb(crops), np.float32)
    if perturbed.shape != crops.shape:
        raise ValueError(f"perturb returned shape {perturbed.shape} for crops of shape "
                         f"{crops.shape}")
    edited = edit_pixels(rgb, list(perturbed - crops), [r.transform for r in aligned], "rgb")
    return edited, aligned


def model_inputs(crops: Sequence[np.ndarray], channels: int = 3) -> np.ndarray:
    """uint8 RGB crops as an export's float32 [N, S, S, C] input in [0, 1]."""
    batch = np.stack([np.asarray(crop, np.uint8) for crop in crops])
    if channels == 1:
        batch = np.stack([cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) for crop in batch])[..., None]
    elif channels != 3:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return batch.astype(np.float32) / 255.0
