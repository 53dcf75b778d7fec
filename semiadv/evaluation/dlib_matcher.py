"""A third-party face matcher for the evaluation: dlib's face recognition ResNet.

The matchers this package trains itself learn from a few dozen identities at 64x64 and
barely tell people apart (RESULTS.md). dlib's `dlib_face_recognition_resnet_model_v1`
(Davis King; ResNet-29 trained on about 3 million faces of 7,485 people, 99.38% on LFW) is
a real matcher that installs from PyPI without a download at run time. The SAN recipes now
train against a Keras port of it, so it is marked *seen* (`seen = True`): it shows what the
SAN kept for the matcher it was trained against, not for matchers it never saw (for those,
plug in an unseen one, e.g. `semiadv.evaluation.onnx_matcher`):

  pip install 'semiadv[dlib]'        # dlib-bin (wheels) and face_recognition_models
  semiadv-evaluate ... --evaluator=semiadv.evaluation.dlib_matcher:make

It is not registered as an entry point (those load on every evaluation), only named with
`--evaluator`. Faces arrive as aligned crops: the whole crop is taken as the face box, dlib's
5-point landmarks re-align it the way the model was trained (`get_face_chip`, 150x150), and
the 128-d descriptor is the embedding.
"""

from __future__ import annotations

import numpy as np

from semiadv.align import dlib_models
from semiadv.evaluation import landmarks


class DlibMatcher:
    """dlib's face recognition ResNet behind the evaluator interface (see `plugins`)."""

    name = "dlib ResNet (third-party)"
    kind = "matcher"
    image_size = None  # Any size: each face is re-aligned to dlib's 150x150 chip.
    origin = "dlib_face_recognition_resnet_model_v1 (face_recognition_models on PyPI)"
    # Seen: the SAN recipes train against a Keras port of this very network, so it
    # cannot tell whether identity survives for matchers the SAN never saw.
    seen = True

    def __init__(self):
        dlib = dlib_models.require_dlib("the dlib matcher")
        import face_recognition_models as models  # require_dlib checked it is installed.

        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._descriptor = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def chips(self, images: np.ndarray) -> list[np.ndarray]:
        """dlib's aligned 150x150 uint8 RGB chip of each face crop [N, H, W, C] in [0, 1]."""
        pixels = landmarks.rgb_uint8(images, "dlib matcher")
        height, width = pixels.shape[1:3]
        box = self._dlib.rectangle(0, 0, width - 1, height - 1)
        return [self._dlib.get_face_chip(np.ascontiguousarray(face),
                                         self._landmarks(face, box), size=150, padding=0.25)
                for face in pixels]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        chips = self.chips(images)
        if not chips:
            return np.zeros((0, 128), np.float32)
        return np.asarray(self._descriptor.compute_face_descriptor(chips), np.float32)


def make() -> DlibMatcher:
    """The factory `--evaluator=semiadv.evaluation.dlib_matcher:make` calls."""
    return DlibMatcher()
