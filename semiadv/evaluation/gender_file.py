"""Any gender classifier shipped as a Keras (`.keras`, `.h5`) or ONNX file, as a plugged-in
evaluator with its input contract as settings.

Whether the SAN hides gender is only shown by classifiers from another family or other data
than its auxiliary CNN ("foreign"). Such classifiers ship as files, each with its own input
contract (side, colour order, pixel scale, which output is male); this evaluator feeds the
evaluation's aligned crops to one of them the way its authors did:

  semiadv-evaluate ... \\
      --gender_classifier='../shared/evaluators/gender_cnn_cvlib.keras?size=96&colour=BGR&scale=255&male_output=0'
  SEMIADV_GENDER_CLASSIFIER='model.onnx?colour=RGB' semiadv-evaluate ... \\
      --evaluator=semiadv.evaluation.gender_file:make

A spec is the model path with optional settings after `?`, joined by `&`:

- `size`: the model's input side (default: read from the model; required when it is dynamic).
- `colour`: `RGB` (default) or `BGR`, the channel order the model expects. A model with one
  input channel gets the luminance (ITU-R BT.601) whatever this says.
- `scale`: the model sees pixel / scale with pixels in [0, 255] (default 255, i.e. [0, 1]);
  or `mean` and `std` (one value or three in the model's colour order): (pixel - mean) / std.
  `scale` and `std` exclude each other.
- `male_output`: the output column that scores *male* (default 1, this package's
  convention; `male_output=0` for "column 0 = man"). A single output p (a sigmoid) is read
  as the two columns [p, 1 - p]: `male_output=0` if p scores male, 1 if it scores female.
- `softmax`: `1` (default) if the outputs are probabilities already (a softmax, or a sigmoid
  per column, in the model; columns are divided by their row's sum; outputs outside [0, 1]
  are refused, naming this setting), `0` if they are logits (a softmax, or a sigmoid for a
  single output, is applied here).
- `margin`: the share of the crop's side added (> 0, edge pixels repeated) or cut (< 0) on
  each side of the aligned crop before resizing to `size` (default 0): for a model trained on
  looser or tighter crops than the package's.
- `layout`: `NHWC` or `NCHW` (default: read from the model's input shape).
- `name`: the report's name (default: the file name); `relation`: `foreign` (default),
  `sibling` (trained on the same data at the same input as the auxiliary CNN) or `seen` (a
  SAN was trained against it). The gender verdict is read on foreign classifiers only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from semiadv.evaluation import onnx_runtime, plugin_specs

ENVIRONMENT_VARIABLE = "SEMIADV_GENDER_CLASSIFIER"
COLOURS = ("RGB", "BGR")
LAYOUTS = ("NHWC", "NCHW")
RELATIONS = ("seen", "sibling", "foreign")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_LUMINANCE = np.array([0.299, 0.587, 0.114], np.float32)
_SETTINGS = ("size", "colour", "scale", "mean", "std", "male_output", "softmax", "margin",
             "layout", "name", "relation")
# Outputs read as probabilities may be off by rounding; beyond this they are logits.
_PROBABILITY_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class GenderFileConfig:
    """How to feed one gender classifier file (see the module docstring for each setting)."""

    model_path: str
    size: int | None = None
    colour: str = "RGB"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)
    male_output: int | None = None
    softmax: bool = True
    margin: float = 0.0
    layout: str | None = None
    name: str | None = None
    relation: str = "foreign"

    def _error(self, message: str) -> ValueError:
        return ValueError(f"gender classifier {self.model_path}: {message}")

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise self._error(f"colour={self.colour!r}, use one of {COLOURS}")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise self._error(f"layout={self.layout!r}, use one of {LAYOUTS}")
        if self.relation not in RELATIONS:
            raise self._error(f"relation={self.relation!r}, use one of {RELATIONS}")
        if self.size is not None and self.size < 8:
            raise self._error(f"size={self.size}: want a side of at least 8 pixels")
        for key in ("mean", "std"):
            if len(getattr(self, key)) not in (1, 3):
                raise self._error(f"{key} needs 1 or 3 values, got {getattr(self, key)}")
        if any(value == 0 for value in self.std):
            raise self._error("scale (or std) must not be 0")
        if self.male_output is not None and self.male_output < 0:
            raise self._error(f"male_output={self.male_output}: want a column index >= 0")
        if not -0.4 <= self.margin <= 1.0:
            raise self._error(f"margin={self.margin:g}: want a share of the side in "
                              "[-0.4, 1] per side")


def _integer(value: str) -> int:
    number = float(value)
    if number != int(number):
        raise ValueError("want an integer")
    return int(number)


def _boolean(value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError("use 0 or 1")
    return value == "1"


def parse_spec(spec: str) -> GenderFileConfig:
    """`path[?key=value&...]` -> GenderFileConfig.

    Raises:
      ValueError: naming the spec and the setting for an empty path or an unknown or malformed
        setting.
    """
    path, pairs = plugin_specs.split_spec(spec, "gender classifier",
                                          "model.keras?size=96&colour=BGR")
    settings: dict = {}
    for key, value in pairs:
        try:
            if key in ("size", "male_output"):
                settings[key] = _integer(value)
            elif key == "scale":
                settings["std"] = (float(value),)
            elif key in ("mean", "std"):
                settings[key] = tuple(float(v) for v in value.split(","))
            elif key == "softmax":
                settings[key] = _boolean(value)
            elif key == "margin":
                settings[key] = float(value)
            elif key in ("colour", "layout"):
                settings[key] = value.upper()
            elif key == "relation":
                settings[key] = value.lower()
            elif key == "name":
                settings[key] = value
            else:
                raise ValueError(f"unknown setting; use {', '.join(_SETTINGS)}")
        except ValueError as error:
            raise ValueError(f"gender classifier spec {spec!r}: {key}={value!r}: {error}") \
                from error
    keys = [key for key, _ in pairs]
    if "scale" in keys and "std" in keys:
        raise ValueError(f"gender classifier spec {spec!r}: give scale= or std=, not both")
    if len(set(keys)) != len(keys):
        raise ValueError(f"gender classifier spec {spec!r}: a setting is given twice")
    try:
        return GenderFileConfig(model_path=path, **settings)
    except ValueError as error:
        raise ValueError(f"gender classifier spec {spec!r}: {error}") from error


def check_file(config: GenderFileConfig) -> Path:
    """The model's path, if it is an existing Keras or ONNX file.

    Raises:
      FileNotFoundError: naming the path when it does not exist.
      ValueError: naming the path when its suffix is neither Keras's nor ONNX's.
    """
    path = Path(config.model_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"gender classifier model {str(path)!r} does not exist: give "
                                "the path of a .keras, .h5 or .onnx file (--gender_classifier "
                                f"or ${ENVIRONMENT_VARIABLE})")
    if path.suffix.lower() not in (*KERAS_SUFFIXES, ".onnx"):
        raise ValueError(f"gender classifier model {str(path)!r}: unknown file type "
                         f"{path.suffix!r}; want one of {(*KERAS_SUFFIXES, '.onnx')}")
    return path


class _KerasBackend:
    """A Keras file's model, called in inference mode."""

    def __init__(self, path: Path):
        import keras
        import tensorflow as tf

        try:
            self.model = keras.models.load_model(path, safe_mode=True, compile=False)
        except Exception as error:  # Keras raises many types for unreadable files.
            raise ValueError(f"gender classifier model {str(path)!r} cannot be loaded by "
                             f"Keras (safe mode): {error}") from error
        if len(self.model.inputs) != 1:
            raise ValueError(f"gender classifier model {str(path)!r} takes "
                             f"{len(self.model.inputs)} inputs; want one image batch")
        self.input_shape = list(self.model.inputs[0].shape)
        self._forward = tf.function(lambda x: self.model(x, training=False),
                                    reduce_retracing=True)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        output = self._forward(x)
        if isinstance(output, dict):
            output = next(iter(output.values()))
        elif isinstance(output, (list, tuple)):
            output = output[0]
        return np.asarray(output, np.float32)


class _OnnxBackend:
    """An ONNX file's model, run by onnxruntime on the CPU."""

    def __init__(self, path: Path):
        self._session = onnx_runtime.cpu_session(path, "ONNX gender classifier model")
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise ValueError(f"gender classifier model {str(path)!r}: want one float image "
                             f"input, got {[(i.name, i.type) for i in inputs]}")
        self._input_name = inputs[0].name
        self.input_shape = [side if isinstance(side, int) else None for side in inputs[0].shape]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        (output, *_) = self._session.run(None, {self._input_name: x})
        return np.asarray(output, np.float32)


class GenderFileClassifier:
    """A gender classifier file behind the evaluator interface (see `plugins`).

    Raises (on construction):
      FileNotFoundError: naming the path when the file is missing.
      ImportError: naming the `[onnx]` extra when onnxruntime is missing for an ONNX file.
      ValueError: naming the path when the file is unreadable, or its input is not a batch of
        square 1- or 3-channel images of a known side.
    """

    kind = "gender"
    image_size = None  # Crops are cut (margin) and resized here, to the model's side.

    def __init__(self, config: GenderFileConfig):
        path = check_file(config)
        self.config = config
        if path.suffix.lower() == ".onnx":
            self._model, family = _OnnxBackend(path), "ONNX"
        else:
            self._model, family = _KerasBackend(path), "Keras"
        self.name = config.name or f"{path.name} ({family})"
        self.relation = config.relation
        self.seen = config.relation == "seen"
        self.origin = "plug-in"
        self.layout, self.input_size, self.input_channels = self._read_input(str(path))
        order = [2, 1, 0] if config.colour == "BGR" else [0, 1, 2]
        self._channel_order = np.array(order)
        self._mean = np.asarray(config.mean, np.float32)
        self._std = np.asarray(config.std, np.float32)

    def _read_input(self, path: str) -> tuple[str, int, int]:
        shape = list(self._model.input_shape)
        if len(shape) != 4:
            raise ValueError(f"gender classifier model {path!r}: input shape {shape}, want a "
                             "batch of images [N, H, W, C] or [N, C, H, W]")
        layout = self.config.layout or ("NCHW" if shape[1] in (1, 3) and shape[3] not in (1, 3)
                                        else "NHWC")
        channels, height, width = ((shape[1], shape[2], shape[3]) if layout == "NCHW"
                                   else (shape[3], shape[1], shape[2]))
        if channels not in (1, 3):
            raise ValueError(f"gender classifier model {path!r}: input shape {shape} has "
                             f"{channels} channels in layout {layout}; want 1 or 3 (set "
                             "layout= in the spec)")
        sides = {side for side in (height, width) if side is not None}
        if len(sides) > 1:
            raise ValueError(f"gender classifier model {path!r}: input {height}x{width} is "
                             "not square")
        side = sides.pop() if sides else None
        if side is not None and self.config.size is not None and side != self.config.size:
            raise ValueError(f"gender classifier model {path!r}: size={self.config.size} but "
                             f"the model takes {side}x{side} images")
        side = side or self.config.size
        if side is None:
            raise ValueError(f"gender classifier model {path!r}: its input side is dynamic; "
                             "give size= in the spec")
        return layout, side, channels

    def crops(self, images: np.ndarray) -> np.ndarray:
        """float32 RGB [N, S, S, 3] in [0, 1]: each crop with its margin, resized to the
        model's side S (antialiased)."""
        import tensorflow as tf

        images = np.asarray(images, np.float32)
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        side = images.shape[1]
        pixels = int(round(abs(self.config.margin) * side))
        if pixels and self.config.margin > 0:
            images = np.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)),
                            mode="edge")
        elif pixels:
            images = images[:, pixels:side - pixels, pixels:images.shape[2] - pixels]
        if images.shape[1:3] != (self.input_size, self.input_size) and len(images):
            images = tf.image.resize(images, (self.input_size, self.input_size),
                                     antialias=True).numpy()
        return np.clip(images, 0.0, 1.0)

    def model_input(self, crops: np.ndarray) -> np.ndarray:
        """The model's input for crops [N, S, S, 3] in [0, 1]: colour, scale and layout."""
        pixels = crops * np.float32(255.0)
        if self.input_channels == 1:
            x = (pixels @ _LUMINANCE)[..., None]
        else:
            x = pixels[..., self._channel_order]
        x = (x - self._mean) / self._std
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, np.float32)

    def male_probability(self, output: np.ndarray) -> np.ndarray:
        """P(male) [N] from the model's raw output [N, K] (or [N])."""
        output = np.asarray(output, np.float32)
        if output.ndim == 1:
            output = output[:, None]
        output = output.reshape(len(output), -1)
        columns = output.shape[1]
        if columns == 1:
            p = output[:, 0]
            if not self.config.softmax:
                p = 1.0 / (1.0 + np.exp(-p))
            elif len(p) and (p.min() < -_PROBABILITY_TOLERANCE
                             or p.max() > 1 + _PROBABILITY_TOLERANCE):
                raise ValueError(f"{self.name}: its single output spans {p.min():g}.."
                                 f"{p.max():g}, not probabilities; add softmax=0 to the spec "
                                 "if the model returns logits")
            output = np.stack([p, 1.0 - p], axis=1)
            columns = 2
        elif not self.config.softmax:
            shifted = output - output.max(axis=1, keepdims=True)
            output = np.exp(shifted)
            output /= output.sum(axis=1, keepdims=True)
        else:
            if len(output) and (output.min() < -_PROBABILITY_TOLERANCE
                                or output.max() > 1 + _PROBABILITY_TOLERANCE):
                raise ValueError(f"{self.name}: its outputs span {output.min():g}.."
                                 f"{output.max():g}, not probabilities; add softmax=0 to the "
                                 "spec if the model returns logits")
            # A sigmoid per column (as in the cvlib CNN) does not sum to 1: normalised, the
            # male share decides as the model's own argmax does.
            output = np.clip(output, 0.0, None)
            output = output / np.maximum(output.sum(axis=1, keepdims=True), 1e-12)
        male = 1 if self.config.male_output is None else self.config.male_output
        if male >= columns:
            raise ValueError(f"{self.name}: male_output={male} but the model returns "
                             f"{columns} columns")
        return np.clip(output[:, male], 0.0, 1.0)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if not len(images):
            return np.zeros((0,), np.float32)
        output = self._model(self.model_input(self.crops(images)))
        if len(output) != len(images):
            raise ValueError(f"{self.name}: the model returned shape {output.shape} for "
                             f"{len(images)} faces")
        return self.male_probability(output)


def make(spec: str | None = None) -> GenderFileClassifier:
    """The factory of `--evaluator=semiadv.evaluation.gender_file:make`.

    Args:
      spec: `path[?settings]` (module docstring); None reads $SEMIADV_GENDER_CLASSIFIER.

    Raises:
      ValueError: when neither gives a model.
    """
    spec = plugin_specs.spec_or_environment(spec, ENVIRONMENT_VARIABLE, "gender classifier",
                                            "path/to/model.keras[?settings]",
                                            "gender_classifier")
    return GenderFileClassifier(parse_spec(spec))
