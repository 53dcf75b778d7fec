"""Face detectors by name: a new one, the process's default, and the calling thread's own.

Threads must not share a detector: OpenCV's cascade classifiers keep scratch state between the
stages of a detection, dlib's objects must not be used by two threads at once, and a TFLite
interpreter holds its tensors between calls.
`default_detector` therefore keeps one detector per thread and name.
"""

from __future__ import annotations

import threading
from typing import Optional

from absl import logging

from semiadv.align import dlib_models
from semiadv.align import mediapipe as mediapipe_detector
from semiadv.align.detector import FaceDetector
from semiadv.align.dlib_detector import DlibFaceDetector
from semiadv.align.haar import HaarFaceDetector

# Detector names, for flags and configs: "haar" (OpenCV, always installed), "dlib" (HOG
# faces, 5-point landmarks; the `[dlib]` extra) and "mediapipe" (BlazeFace and its eye
# keypoints; the `[mediapipe]` extra).
DETECTORS = ("haar", "dlib", "mediapipe")
# Part of the key of the alignment cache of `folder:` datasets (`semiadv.data.folder_source`):
# a detector's number goes up whenever its crops change, so crops it made before are never
# reused. mediapipe 2: keypoint eyes moved onto the eye-corner means (BENCHMARKS.md §9h).
DETECTOR_REVISIONS = {"haar": 1, "dlib": 2, "mediapipe": 2}

_THREAD = threading.local()
_DEFAULT = {"name": None}
_DEFAULT_LOCK = threading.Lock()


def _check_name(name: str) -> None:
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")


def make_detector(name: str) -> FaceDetector:
    """A new detector by name (see DETECTORS).

    Raises:
      ValueError: for an unknown name.
      ImportError: for "dlib" without the `[dlib]` extra, "mediapipe" without the
        `[mediapipe]` extra (naming it).
    """
    _check_name(name)
    if name == "dlib":
        return DlibFaceDetector()
    if name == "mediapipe":
        return mediapipe_detector.MediaPipeFaceDetector()
    return HaarFaceDetector()


def default_detector_name() -> str:
    """The detector `align_face` / `align_folder` use when given none.

    "mediapipe" when the `[mediapipe]` extra is installed (as many crops and eye-aligned
    photos as dlib, better kept identities, several times faster: BENCHMARKS.md §9g), else
    "dlib" when the `[dlib]` extra is (more of both than Haar, faster), else "haar" after a
    one-time warning; `set_default_detector` overrides it.
    """
    with _DEFAULT_LOCK:
        if _DEFAULT["name"] is None:
            if mediapipe_detector.mediapipe_available():
                _DEFAULT["name"] = "mediapipe"
            elif dlib_models.dlib_available():
                _DEFAULT["name"] = "dlib"
            else:
                logging.warning("neither MediaPipe's models nor dlib is installed: aligning faces "
                                "with OpenCV's Haar cascades, which crop and eye-align fewer "
                                "photos, more slowly (%s)", mediapipe_detector.MEDIAPIPE_INSTALL)
                _DEFAULT["name"] = "haar"
        return _DEFAULT["name"]


def set_default_detector(name: Optional[str]) -> None:
    """Sets the detector used when none is given, process-wide (None: back to automatic).

    For binaries, whose flag picks the detector of library calls that take none.

    Raises:
      ValueError: for an unknown name.
      ImportError: for "dlib" without the `[dlib]` extra, "mediapipe" without the
        `[mediapipe]` extra (naming it).
    """
    if name is not None:
        _check_name(name)
        if name == "dlib":
            dlib_models.require_dlib("the dlib face detector")
        if name == "mediapipe":
            mediapipe_detector.require_mediapipe("the MediaPipe face detector")
    with _DEFAULT_LOCK:
        _DEFAULT["name"] = name


def default_detector(name: Optional[str] = None) -> FaceDetector:
    """The calling thread's detector of that name (None: `default_detector_name()`).

    One per thread and name (see the module docstring), made at the thread's first call.
    """
    name = name or default_detector_name()
    detectors = _THREAD.__dict__.setdefault("detectors", {})
    if name not in detectors:
        detectors[name] = make_detector(name)
    return detectors[name]
