"""Any ArcFace-style face matcher shipped as an ONNX file, as a plugged-in evaluator.

Users judge a privacy tool with the matcher they already run, and most face matchers ship as
ONNX files that take a face warped onto the ArcFace 112x112 template. This evaluator aligns
each face crop by its five landmarks (dlib, `semiadv.evaluation.landmarks`) onto that template,
runs the model with onnxruntime and returns unit embeddings:

  pip install 'semiadv[onnx,dlib]'
  semiadv-evaluate ... --onnx_matcher=path/to/model.onnx
  SEMIADV_ONNX_MATCHER=path/to/model.onnx semiadv-evaluate ... \\
      --evaluator=semiadv.evaluation.onnx_matcher:make

A spec is the model path with optional settings after `?`, e.g.
`model.onnx?layout=NHWC&colour=RGB&mean=127.5&std=128&landmarks=5&name=my%20matcher&seen=1`:

- `layout`: `NCHW` (default) or `NHWC`, the model's input layout.
- `colour`: `BGR` (default, the ArcFace / insightface convention) or `RGB`.
- `mean`, `std`: the model's input is (pixel - mean) / std with pixels in [0, 255]; one value,
  or three comma-separated ones in the model's colour order. Default 127.5 and 127.5.
- `landmarks`: `5` (default) or `68`, dlib's landmark model (see `landmarks`).
- `name`: the name in the report (default: the file name); `seen`: 1 if a SAN was trained
  against this matcher (the report marks it; the baselines never calibrate on it).

The input side is read from the model (112 when its shape is dynamic); the template is scaled
to it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from semiadv.align import dlib_models
from semiadv.evaluation import landmarks as landmarks_lib
from semiadv.evaluation import onnx_runtime, plugin_specs

ENVIRONMENT_VARIABLE = "SEMIADV_ONNX_MATCHER"
LAYOUTS = ("NCHW", "NHWC")
COLOURS = ("BGR", "RGB")


@dataclasses.dataclass(frozen=True)
class OnnxMatcherConfig:
    """How to feed one ONNX matcher (see the module docstring for each setting)."""

    model_path: str
    layout: str = "NCHW"
    colour: str = "BGR"
    mean: tuple[float, ...] = (127.5,)
    std: tuple[float, ...] = (127.5,)
    # The 5-point model aligns better than the 68-point one for the shared MobileFaceNet
    # (RESULTS.md), and reads faster.
    landmarks: str = "5"
    name: str | None = None
    seen: bool = False

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"ONNX matcher {self.model_path}: layout={self.layout!r}, use one "
                             f"of {LAYOUTS}")
        if self.colour not in COLOURS:
            raise ValueError(f"ONNX matcher {self.model_path}: colour={self.colour!r}, use one "
                             f"of {COLOURS}")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) not in (1, 3):
                raise ValueError(f"ONNX matcher {self.model_path}: {key} needs 1 or 3 values, "
                                 f"got {values}")
        if any(value == 0 for value in self.std):
            raise ValueError(f"ONNX matcher {self.model_path}: std must not be 0")
        if self.landmarks not in landmarks_lib.MODELS:
            raise ValueError(f"ONNX matcher {self.model_path}: landmarks={self.landmarks!r}, "
                             f"use one of {landmarks_lib.MODELS}")


def parse_spec(spec: str) -> OnnxMatcherConfig:
    """`path[?key=value&...]` -> OnnxMatcherConfig.

    Raises:
      ValueError: naming the spec for an empty path or an unknown or malformed setting.
    """
    path, pairs = plugin_specs.split_spec(spec, "ONNX matcher", "model.onnx?layout=NHWC")
    settings: dict = {}
    for key, value in pairs:
        try:
            if key in ("mean", "std"):
                settings[key] = tuple(float(v) for v in value.split(","))
            elif key == "seen":
                if value not in ("0", "1"):
                    raise ValueError("use 0 or 1")
                settings[key] = value == "1"
            elif key in ("layout", "colour"):
                settings[key] = value.upper()
            elif key in ("landmarks", "name"):
                settings[key] = value
            else:
                raise ValueError("unknown setting; use layout, colour, mean, std, landmarks, "
                                 "name or seen")
        except ValueError as error:
            raise ValueError(f"ONNX matcher spec {spec!r}: {key}={value!r}: {error}") from error
    return OnnxMatcherConfig(model_path=path, **settings)


class OnnxMatcher:
    """An ONNX face matcher behind the evaluator interface (see `plugins`).

    Raises (on construction):
      ImportError: naming the `[onnx]` (or `[dlib]`) extra when a package is missing.
      FileNotFoundError / ValueError: naming the model path when it is missing or unreadable,
        or when its input is not a batch of 3-channel square images in the configured layout.
    """

    kind = "matcher"
    image_size = None  # Any size: each face is re-aligned onto the template.

    def __init__(self, config: OnnxMatcherConfig):
        path = Path(config.model_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ONNX matcher model {str(path)!r} does not exist: give "
                                    f"the path of an .onnx file (--onnx_matcher or "
                                    f"${ENVIRONMENT_VARIABLE})")
        self._session = onnx_runtime.cpu_session(path, "ONNX matcher model")
        self.config = config
        self.name = config.name or f"{path.name} (ONNX)"
        self.seen = config.seen
        self.origin = "plug-in"
        self.input_size = self._check_input(str(path))
        self._input_name = self._session.get_inputs()[0].name
        dlib_models.require_dlib("the ONNX matcher")  # Fails now, naming the extra, not at the first face.
        self._landmarks = None  # Read at the first face: the 68-point model is 100 MB.
        channel_order = [2, 1, 0] if config.colour == "BGR" else [0, 1, 2]
        self._channel_order = np.array(channel_order)
        self._mean = np.asarray(config.mean, np.float32)
        self._std = np.asarray(config.std, np.float32)
        self.detected = 0  # Faces dlib's detector found (the rest used the fallback box).
        self.aligned = 0

    def _check_input(self, path: str) -> int:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"ONNX matcher model {path!r} takes {len(inputs)} inputs; want one "
                             "image batch")
        shape = list(inputs[0].shape)
        if inputs[0].type != "tensor(float)":
            raise ValueError(f"ONNX matcher model {path!r}: input type {inputs[0].type}, want "
                             "tensor(float)")
        if len(shape) != 4:
            raise ValueError(f"ONNX matcher model {path!r}: input shape {shape}, want a batch "
                             f"of images ({self._layout_hint()})")
        channels, height, width = ((shape[1], shape[2], shape[3])
                                   if self.config.layout == "NCHW"
                                   else (shape[3], shape[1], shape[2]))
        if channels != 3 or any(isinstance(side, int) and side < 16 for side in (height, width)):
            raise ValueError(f"ONNX matcher model {path!r}: input shape {shape} is not "
                             f"{self._layout_hint()}; set layout= in the spec")
        sides = {side for side in (height, width) if isinstance(side, int)}
        if len(sides) > 1:
            raise ValueError(f"ONNX matcher model {path!r}: input {height}x{width} is not "
                             "square; the ArcFace template is")
        return sides.pop() if sides else 112

    def _layout_hint(self) -> str:
        return ("[N, 3, H, W] for layout=NCHW" if self.config.layout == "NCHW"
                else "[N, H, W, 3] for layout=NHWC")

    def aligned_faces(self, images: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, S, S, 3]: each crop warped onto the template (S = the model's side)."""
        pixels = landmarks_lib.rgb_uint8(images, self.name)
        faces = np.zeros((len(pixels), self.input_size, self.input_size, 3), np.uint8)
        if len(pixels) and self._landmarks is None:
            self._landmarks = landmarks_lib.DlibLandmarks(self.config.landmarks)
        for index, face in enumerate(pixels):
            points, found = self._landmarks(face)
            self.detected += int(found)
            faces[index] = landmarks_lib.warp_to_template(
                face, points, self._landmarks.template_112, self.input_size)
        self.aligned += len(pixels)
        return faces

    def model_input(self, faces: np.ndarray) -> np.ndarray:
        """The model's input for aligned uint8 RGB faces [N, S, S, 3]: colour order,
        (pixel - mean) / std, layout."""
        x = faces[..., self._channel_order].astype(np.float32)
        x = (x - self._mean) / self._std
        if self.config.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """Unit embeddings [N, D] of aligned uint8 RGB faces [N, S, S, 3]."""
        if not len(faces):
            return np.zeros((0, self._embedding_dim()), np.float32)
        (output, *_) = self._session.run(None, {self._input_name: self.model_input(faces)})
        output = np.asarray(output, np.float32)
        if output.ndim != 2 or len(output) != len(faces):
            raise ValueError(f"{self.name}: the model returned shape {output.shape} for "
                             f"{len(faces)} faces; want [N, D] embeddings")
        return output / np.maximum(np.linalg.norm(output, axis=1, keepdims=True), 1e-12)

    def _embedding_dim(self) -> int:
        dim = self._session.get_outputs()[0].shape[-1]
        return dim if isinstance(dim, int) else 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.embed_aligned(self.aligned_faces(images))


def make(spec: str | None = None) -> OnnxMatcher:
    """The factory of `--evaluator=semiadv.evaluation.onnx_matcher:make`.

    Args:
      spec: `path[?settings]` (module docstring); None reads $SEMIADV_ONNX_MATCHER.

    Raises:
      ValueError: when neither gives a model.
    """
    spec = plugin_specs.spec_or_environment(spec, ENVIRONMENT_VARIABLE, "ONNX matcher",
                                            "path/to/model.onnx[?settings]", "onnx_matcher")
    return OnnxMatcher(parse_spec(spec))
