"""How faithful an output is to its original: SSIM, PSNR, CIELAB colour difference, detection.

- SSIM and PSNR (`metrics.image_quality`, TensorFlow's, max_val=1).
- ΔE*ab (CIE76): the Euclidean distance in CIELAB between each output pixel and the original's,
  averaged over the pixels of an image (`semiadv.utils.colour`, the conversion the SAN's colour term
  trains with). About 2.3 is a just-noticeable difference; 100+ is another colour.
- Face detector hit rate: the share of outputs in which the package's face detector
  (`semiadv.align.registry.default_detector()`) still finds a face, among the photos whose original it
  found a face in. A privacy tool whose outputs stop being faces fails this.
"""

from __future__ import annotations

import numpy as np

from semiadv.utils import colour
from semiadv.evaluation import metrics

# The Haar cascades want a face with some context around it and at least 20 pixels wide; our
# crops are tight. Each image is padded by this fraction of its side on every edge (edge pixels
# repeated) and resized to DETECTION_SIDE before detection, originals and outputs alike:
# padding, far more than upscaling, is what lets the detector find faces in tight crops.
DETECTION_PADDING = 0.25
DETECTION_SIDE = 160


def mean_delta_e(originals: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Mean ΔE*ab over the pixels of each image: [N, H, W, C] pairs -> [N]."""
    values = colour.delta_e(np.asarray(originals, np.float32), np.asarray(outputs, np.float32))
    return values.numpy().reshape(len(originals), -1).mean(axis=1)


def faces_found(images: np.ndarray, detector=None) -> np.ndarray:
    """Whether the face detector finds at least one face in each image [N, H, W, C] in [0, 1].

    Args:
      detector: anything with `detect_faces(gray uint8) -> boxes`; default the package's
        (`semiadv.align.registry.default_detector()`).

    Returns:
      bool [N].
    """
    import cv2

    from semiadv.align import registry

    detector = detector or registry.default_detector()
    images = np.asarray(images, np.float32)
    gray = images[..., 0] if images.shape[-1] == 1 else images @ np.float32([0.299, 0.587,
                                                                             0.114])
    pixels = np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)
    found = np.zeros(len(pixels), bool)
    for index, image in enumerate(pixels):
        pad = round(DETECTION_PADDING * min(image.shape))
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        image = cv2.resize(image, (DETECTION_SIDE, DETECTION_SIDE),
                           interpolation=cv2.INTER_LINEAR)
        found[index] = len(detector.detect_faces(image)) > 0
    return found


def fidelity(originals: np.ndarray, outputs: np.ndarray, found_in_originals: np.ndarray,
             detector=None) -> dict:
    """Means over images of SSIM, PSNR and ΔE*ab, and the detector's hit rate.

    Args:
      originals, outputs: [N, H, W, C] in [0, 1], pairwise.
      found_in_originals: bool [N], `faces_found(originals)` (computed once per run).
      detector: see `faces_found`.

    Returns:
      {"ssim", "psnr" (dB; inf only if every output equals its original), "delta_e",
       "detector_hit_rate" (NaN when the detector found no original),
       "detector_originals" (how many originals it found a face in)}.
    """
    quality = metrics.mean_quality(originals, outputs)
    found_in_originals = np.asarray(found_in_originals, bool)
    hits = faces_found(outputs[found_in_originals], detector)
    return {**quality,
            "delta_e": float(mean_delta_e(originals, outputs).mean()),
            "detector_hit_rate": float(hits.mean()) if len(hits) else float("nan"),
            "detector_originals": int(found_in_originals.sum())}


def fidelity_to_original(images: dict) -> dict:
    """`fidelity` of each condition in `images` ({condition: [N, H, W, C]}) against
    `images["original"]`, the detector's hit rate among the originals it finds a face in."""
    found = faces_found(images["original"])
    return {condition: fidelity(images["original"], outputs, found)
            for condition, outputs in images.items() if condition != "original"}
