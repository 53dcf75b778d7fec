"""dlib's face recognition ResNet as a Keras 3 network.

`dlib_face_recognition_resnet_model_v1.dat` (Davis King; from `face_recognition_models`, the
`[dlib]` extra) is dlib's binary serialisation of the network of dlib's
`dnn_face_recognition_ex.cpp`:

    loss_metric<fc_no_bias<128, avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

alevel4 is three `ares<32>`, alevel3 `ares_down<64>` and three `ares<64>`, alevel2 and alevel1
`ares_down` and two `ares` at 128 and 256, alevel0 one `ares_down<256>`. A residual block is
`con 3x3 -> affine -> relu -> con 3x3 -> affine`, added to its input and followed by relu; the
`_down` blocks stride their first conv by 2 and add a 2x2/2 average pool of their input.

This module reads that file (no dlib needed) and builds the same network from built-in Keras
layers, so the matcher can sit inside a TensorFlow graph and pass gradients: input
`[N, 150, 150, 3]` RGB in [0, 1], output dlib's 128-d descriptor. The converted weights are
cached under the user cache (`$SEMIADV_CACHE_DIR`, else `~/.cache/semiadv`) keyed by the
file's SHA-256: never downloaded, never committed.

The dlib conventions the port keeps (each checked against dlib itself in
tests/models/test_dlib_resnet.py):
- dlib's `con` pads `nr/2` when its stride is 1 and 0 otherwise; its pools pad 0 when strided.
  The file stores the paddings and the port checks them.
- `add_prev` of tensors of different shapes adds them aligned at the origin and treats what is
  missing as 0 (`tt::add`): a `_down` block's skip has half the channels and, at 8x8 -> 3x3 and
  4x4 -> 1x1, one row and column more than the strided conv's output.
- `input_rgb_image` feeds `(pixel - mean) / 256` with the file's per-channel means: folded
  into the (unpadded) stem conv's kernel and bias.
- `affine` (batch norm frozen into a scale and shift) follows every conv: it is folded into the
  conv's kernel and bias.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import keras
import numpy as np

INPUT_SIZE = 150
DESCRIPTOR_SIZE = 128
_INSTALL = 'pip install -e ".[dlib]" (dlib-bin and face_recognition_models)'
_REINSTALL = ("reinstall it: pip install --force-reinstall face_recognition_models==0.3.0, "
              'or pip install -e ".[dlib]"')

# (filters, blocks, first block strided) per level, input side first: alevel4 ... alevel0.
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class DlibModelError(ValueError):
    """The .dat file is not the dlib face recognition ResNet this port expects."""


def model_location() -> Path:
    """Path of `dlib_face_recognition_resnet_model_v1.dat` in `face_recognition_models`.

    Raises:
        ImportError: the package is not installed (the message says how to install it).
    """
    try:
        import face_recognition_models
    except ImportError as error:
        raise ImportError(f"dlib's face recognition ResNet needs face_recognition_models: "
                          f"{_INSTALL} ({error})") from error
    return Path(face_recognition_models.face_recognition_model_location())


# ---------------------------------------------------------------------------------------------
# dlib's serialisation (dlib/serialize.h, dlib/dnn/{core,layers,input,loss,tensor}.h)


@dataclass
class DlibLayer:
    """One computational layer of the file, input side first (tags and skips carry nothing)."""

    kind: str  # dlib's serialised name: con_4, affine_, relu_, max_pool_2, ...
    config: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """What the file holds: input means (R, G, B, on 0..255), input size, layers."""

    means: tuple
    input_size: tuple
    layers: list


class _Reader:
    """Sequential reader of dlib's serialisation; every read past the end names the file."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, what: str) -> DlibModelError:
        return DlibModelError(f"{self.path}: {what} (at byte {self.pos} of {len(self.data)}); "
                              f"not dlib's face recognition ResNet v1 as expected: {_REINSTALL}")

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail(f"file ends early: truncated, wanted {count} more bytes")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        # One control byte: low 4 bits the byte count, bit 7 the sign; then the magnitude,
        # little endian.
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise self.fail(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        # dlib's portable float: a mantissa (int64) and a binary exponent (int16).
        mantissa = self.integer()
        return float(mantissa) * 2.0 ** self.integer()

    def string(self) -> str:
        size = self.integer()
        if not 0 <= size <= 256:
            raise self.fail(f"bad string length {size}")
        return self.take(size).decode("latin-1")

    def flag(self) -> bool:
        value = self.take(1)
        if value not in (b"0", b"1"):
            raise self.fail(f"bad bool {value!r}")
        return value == b"1"

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:  # version 2 writes raw little-endian float32s
            raise self.fail(f"tensor format version {version}, expected 2")
        shape = tuple(self.integer() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"bad tensor shape {shape}")
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), "<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple:
        version = self.integer()
        if version != 1:
            raise self.fail(f"alias_tensor version {version}, expected 1")
        return tuple(self.integer() for _ in range(4))

    def expect(self, value, wanted, what: str):
        if value != wanted:
            raise self.fail(f"{what} is {value!r}, expected {wanted!r}")
        return value


def _read_layer_details(reader: _Reader, kind: str) -> DlibLayer:
    layer = DlibLayer(kind)
    if kind == "con_4":
        params = reader.tensor()
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer()
                                                                 for _ in range(7))
        kernel_shape = reader.alias()
        bias_shape = reader.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.real()
        kernel_size = int(np.prod(kernel_shape))
        if params.size != kernel_size + int(np.prod(bias_shape)) or kernel_shape[0] != filters:
            raise reader.fail(f"con_4 parameters {params.size} do not fit kernel {kernel_shape}"
                              f" and bias {bias_shape}")
        flat = params.reshape(-1)
        layer.config = dict(filters=filters, kernel=(rows, cols), strides=(stride_y, stride_x),
                            padding=(pad_y, pad_x), in_channels=kernel_shape[1])
        layer.arrays = dict(kernel=flat[:kernel_size].reshape(kernel_shape),
                            bias=flat[kernel_size:])
    elif kind == "affine_":
        params = reader.tensor()
        gamma_shape, beta_shape = reader.alias(), reader.alias()
        mode = reader.integer()
        channels = int(np.prod(gamma_shape))
        reader.expect(mode, 0, "affine_ mode (0: per channel, CONV_MODE)")
        if params.size != 2 * channels or gamma_shape != beta_shape:
            raise reader.fail(f"affine_ parameters {params.size} for gamma {gamma_shape}")
        flat = params.reshape(-1)
        layer.config = dict(channels=channels)
        layer.arrays = dict(gamma=flat[:channels], beta=flat[channels:])
    elif kind in ("max_pool_2", "avg_pool_2"):
        rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(6))
        layer.config = dict(pool=(rows, cols), strides=(stride_y, stride_x),
                            padding=(pad_y, pad_x))
    elif kind == "fc_2":
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor()
        weight_shape, bias_shape = reader.alias(), reader.alias()
        bias_mode = reader.integer()
        for _ in range(4):
            reader.real()
        reader.expect(bias_mode, 1, "fc_ bias mode (1: FC_NO_BIAS)")
        if params.size != inputs * outputs or weight_shape[:2] != (inputs, outputs):
            raise reader.fail(f"fc_ parameters {params.shape} for {inputs}x{outputs}")
        layer.config = dict(units=outputs, inputs=inputs)
        layer.arrays = dict(kernel=params.reshape(inputs, outputs))
    elif kind not in ("relu_", "add_prev_"):
        raise reader.fail(f"unexpected layer {kind!r}")
    return layer


def _read_layer_state(reader: _Reader) -> None:
    # add_layer's bookkeeping after each layer: three bools and three (empty) tensors.
    for _ in range(3):
        reader.flag()
    for _ in range(3):
        reader.tensor()


def read_dat(path: Optional[os.PathLike] = None) -> DlibNetwork:
    """Parses dlib's serialised face recognition ResNet.

    Args:
        path: the .dat file; `face_recognition_models`'s copy by default.

    Returns:
        The input means and size and the computational layers, input side first.

    Raises:
        DlibModelError: the file is truncated or is not this network (the message names it).
        ImportError: `face_recognition_models` is missing and no path was given.
    """
    path = Path(path) if path is not None else model_location()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DlibModelError(f"{path}: cannot read dlib's model ({error}): {_REINSTALL}") \
            from error
    reader = _Reader(data, path)
    # add_loss_layer: version, the loss, then the nested network. Each add_layer /
    # add_tag_layer / add_skip_layer writes its version and then its subnetwork before its
    # own layer, so all versions come first (output side first) and the layers follow input
    # side first. The innermost add_layer (version 3) holds the input layer.
    reader.expect(reader.integer(), 1, "loss layer version")
    reader.expect(reader.string(), "loss_metric_2", "loss layer")
    reader.real(), reader.real()  # margin, distance threshold
    versions = []
    while not versions or versions[-1] != 3:
        versions.append(reader.integer())
        if versions[-1] not in (1, 2, 3) or len(versions) > 1000:
            raise reader.fail(f"layer version {versions[-1]} in the network's nesting")
    reader.expect(reader.string(), "input_rgb_image_sized", "input layer")
    means = tuple(reader.real() for _ in range(3))
    input_size = (reader.integer(), reader.integer())
    layers = []
    for index in range(versions.count(2) + 1):
        layers.append(_read_layer_details(reader, reader.string()))
        _read_layer_state(reader)
        if index == 0:
            reader.integer()  # the input add_layer's sample expansion factor
    if reader.pos != len(data):
        raise reader.fail(f"{len(data) - reader.pos} bytes left after the last layer")
    return DlibNetwork(means, input_size, layers)


# ---------------------------------------------------------------------------------------------
# The Keras network


@keras.saving.register_keras_serializable(package="semiadv")
class ZeroPadChannels(keras.layers.Layer):
    """Appends zero channels up to `channels`: dlib's `add_prev` of a narrower skip."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def build(self, input_shape):
        if input_shape[-1] > self.channels:
            raise ValueError(f"ZeroPadChannels({self.channels}) got {input_shape[-1]} channels")
        self.built = True

    def call(self, inputs):
        extra = self.channels - inputs.shape[-1]
        return keras.ops.pad(inputs, [[0, 0]] * (len(inputs.shape) - 1) + [[0, extra]])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def _expected_kinds() -> list:
    """dlib's layer sequence for this network, input side first."""
    kinds = ["con_4", "affine_", "relu_", "max_pool_2"]
    for _, blocks, strided in _LEVELS:
        for block in range(blocks):
            kinds += ["con_4", "affine_", "relu_", "con_4", "affine_"]
            kinds += ["avg_pool_2", "add_prev_", "relu_"] if strided and block == 0 \
                else ["add_prev_", "relu_"]
    return kinds + ["avg_pool_2", "fc_2"]


def _check_structure(network: DlibNetwork, path) -> None:
    kinds = [layer.kind for layer in network.layers]
    expected = _expected_kinds()
    if kinds != expected:
        first = next((i for i, (a, b) in enumerate(zip(kinds, expected)) if a != b),
                     min(len(kinds), len(expected)))
        raise DlibModelError(
            f"{path}: layer {first} is {kinds[first] if first < len(kinds) else 'missing'}, "
            f"expected {expected[first] if first < len(expected) else 'nothing'} "
            f"({len(kinds)} layers, expected {len(expected)}): not dlib's face recognition "
            f"ResNet v1: {_REINSTALL}")
    if network.input_size != (INPUT_SIZE, INPUT_SIZE):
        raise DlibModelError(f"{path}: input size {network.input_size}, expected 150x150")
    for index, (layer, wanted) in enumerate(zip(network.layers, _skeleton().layers)):
        config = {key: layer.config[key] for key in wanted.config}
        if config != wanted.config:
            raise DlibModelError(f"{path}: layer {index} ({layer.kind}) is {config}, expected "
                                 f"{wanted.config}: not dlib's face recognition ResNet v1: "
                                 f"{_REINSTALL}")


def _conv(x, layer: DlibLayer, name: str):
    config = layer.config
    rows, cols = config["kernel"]
    pad = config["padding"]
    if pad == (rows // 2, cols // 2) and config["strides"] == (1, 1):
        padding = "same"
    elif pad == (0, 0):
        padding = "valid"
    else:
        raise DlibModelError(f"con_4 {name}: padding {pad} with stride {config['strides']}")
    return keras.layers.Conv2D(config["filters"], (rows, cols), strides=config["strides"],
                               padding=padding, name=name)(x)


def _pool(layer: DlibLayer, kind, name: str):
    if layer.config["padding"] != (0, 0):
        raise DlibModelError(f"{layer.kind} {name}: padding {layer.config['padding']}")
    return kind(layer.config["pool"], strides=layer.config["strides"], padding="valid", name=name)


def _add_like_dlib(skip, residual, name: str):
    """dlib's add_prev: shapes aligned at the origin, what one side lacks counts as 0."""
    rows = max(skip.shape[1], residual.shape[1])
    channels = max(skip.shape[-1], residual.shape[-1])
    padded = []
    for tensor, part in ((skip, "skip"), (residual, "residual")):
        extra = rows - tensor.shape[1]
        if extra:
            tensor = keras.layers.ZeroPadding2D(((0, extra), (0, extra)),
                                                name=f"{name}_{part}_pad")(tensor)
        if tensor.shape[-1] < channels:
            tensor = ZeroPadChannels(channels, name=f"{name}_{part}_channels")(tensor)
        padded.append(tensor)
    return keras.layers.Add(name=f"{name}_add")(padded)


def _graph(network: DlibNetwork, name: str):
    """The functional graph and, per Keras layer name, the dlib layers it takes weights from."""
    layers = iter(network.layers)
    sources = {}
    # dlib's input normalisation, (255 x - mean) / 256, is folded into the stem conv's
    # weights (`_converted_weights`): the stem is unpadded, so that is exact.
    x = inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="rgb")

    def conv_affine(x, name):
        conv, affine = next(layers), next(layers)
        sources[name] = (conv, affine)
        return _conv(x, conv, name)

    x = conv_affine(x, "stem_conv")
    next(layers)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = _pool(next(layers), keras.layers.MaxPooling2D, "stem_pool")(x)
    for level, (_, blocks, strided) in enumerate(_LEVELS):
        for block in range(blocks):
            prefix = f"level{level}_block{block}"
            skip = x
            y = conv_affine(x, f"{prefix}_conv1")
            next(layers)
            y = keras.layers.ReLU(name=f"{prefix}_relu1")(y)
            y = conv_affine(y, f"{prefix}_conv2")
            if strided and block == 0:
                skip = _pool(next(layers), keras.layers.AveragePooling2D, f"{prefix}_skip_pool")(x)
            next(layers)  # add_prev_
            x = _add_like_dlib(skip, y, prefix)
            next(layers)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
    next(layers)  # avg_pool_everything
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    fc = next(layers)
    sources["descriptor"] = (fc,)
    outputs = keras.layers.Dense(fc.config["units"], use_bias=False, name="descriptor")(x)
    return keras.Model(inputs, outputs, name=name), sources


def _converted_weights(network: DlibNetwork, sources: dict) -> dict:
    weights = {}
    for name, parts in sources.items():
        if name == "descriptor":
            weights[f"{name}/kernel"] = parts[0].arrays["kernel"]
            continue
        conv, affine = parts
        # dlib's filters are [out, in, rows, cols]; Keras wants [rows, cols, in, out]. The
        # affine scale and shift fold into the conv: gamma (W x + b) + beta.
        gamma, beta = affine.arrays["gamma"], affine.arrays["beta"]
        kernel = conv.arrays["kernel"].astype(np.float64).transpose(2, 3, 1, 0) * gamma
        bias = conv.arrays["bias"].astype(np.float64) * gamma + beta
        if name == "stem_conv":
            # dlib feeds the stem (255 x - mean) / 256 for x in [0, 1]; with no padding every
            # tap reads a pixel, so W ((255 x - m) / 256) + b = (255 / 256) W x
            # + (b - sum W m / 256) exactly.
            means = np.asarray(network.means, np.float64)
            bias = bias - np.einsum("hwio,i->o", kernel, means) / 256.0
            kernel = kernel * (255.0 / 256.0)
        weights[f"{name}/kernel"] = kernel.astype(np.float32)
        weights[f"{name}/bias"] = bias.astype(np.float32)
    return weights


# The converted weights' layout, part of the cache's file name so that a cache written by
# another layout is never read: 1 had a Normalization layer before the stem, 2 folds it into
# the stem conv.
_LAYOUT_VERSION = 2


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(path: Optional[os.PathLike] = None) -> Path:
    """Where the converted weights of `path` (default: the packaged .dat) are cached.

    Keyed by the file's SHA-256 and the converted layout's version (`_LAYOUT_VERSION`).
    """
    from semiadv.data.datasets import cache_root

    path = Path(path) if path is not None else model_location()
    if not path.is_file():
        raise DlibModelError(f"{path}: dlib's model file not found: {_REINSTALL}")
    return cache_root() / "dlib_resnet" / f"{_file_digest(path)[:20]}.v{_LAYOUT_VERSION}.npz"


def load_converted(path: Optional[os.PathLike] = None) -> dict:
    """The Keras weights converted from dlib's .dat, from the cache or converted now.

    Args:
        path: the .dat file; `face_recognition_models`'s copy by default.

    Returns:
        Keras layer name + "/kernel" or "/bias" -> float32 array; `means` -> the input means.

    Raises:
        DlibModelError: the file is truncated or not this network.
        ImportError: `face_recognition_models` is missing and no path was given.
    """
    path = Path(path) if path is not None else model_location()
    cached = cache_path(path)
    if cached.is_file():
        with np.load(cached) as stored:
            return {key: stored[key] for key in stored.files}
    network = read_dat(path)
    _check_structure(network, path)
    _, sources = _graph(network, "dlib_resnet")
    weights = _converted_weights(network, sources)
    weights["means"] = np.asarray(network.means, np.float32)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{cached.stem}.{os.getpid()}.partial.npz")
    np.savez(partial, **weights)
    os.replace(partial, cached)  # a killed conversion leaves no half-written cache
    return weights


def _skeleton() -> DlibNetwork:
    """The network's layer list without weights: enough to build the graph."""
    convs = [(32, (7, 7), (2, 2), (0, 0))]
    for filters, blocks, strided in _LEVELS:
        for block in range(blocks):
            stride = 2 if strided and block == 0 else 1
            convs += [(filters, (3, 3), (stride, stride), (0, 0) if stride == 2 else (1, 1)),
                      (filters, (3, 3), (1, 1), (1, 1))]
    convs = iter(convs)
    layers = []
    kinds = _expected_kinds()
    for index, kind in enumerate(kinds):
        layer = DlibLayer(kind)
        if kind == "con_4":
            filters, kernel, strides, padding = next(convs)
            layer.config = dict(filters=filters, kernel=kernel, strides=strides, padding=padding)
        elif kind in ("max_pool_2", "avg_pool_2"):
            if index == len(kinds) - 2:  # avg_pool_everything: dlib writes a 0x0 window
                layer.config = dict(pool=(0, 0), strides=(1, 1), padding=(0, 0))
            else:
                pool = (3, 3) if kind == "max_pool_2" else (2, 2)
                layer.config = dict(pool=pool, strides=(2, 2), padding=(0, 0))
        elif kind == "fc_2":
            layer.config = dict(units=DESCRIPTOR_SIZE, inputs=256)
        layers.append(layer)
    return DlibNetwork((122.782, 117.001, 104.298), (INPUT_SIZE, INPUT_SIZE), layers)


def build_dlib_resnet(weights: Optional[bool] = True, path: Optional[os.PathLike] = None,
                      name: str = "dlib_resnet") -> keras.Model:
    """dlib's face recognition ResNet as a Keras model.

    Args:
        weights: True loads dlib's weights (converted on first use, then cached); None leaves
            the layers randomly initialised (the architecture only).
        path: the .dat file; `face_recognition_models`'s copy by default.
        name: the model's name.

    Returns:
        A model mapping `[N, 150, 150, 3]` RGB in [0, 1] (a dlib chip / 255) to dlib's 128-d
        descriptor.
    """
    if not weights:
        model, _ = _graph(_skeleton(), name)
        return model
    converted = load_converted(path)
    model, sources = _graph(_skeleton(), name)
    for layer_name in sources:
        layer = model.get_layer(layer_name)
        values = [converted[f"{layer_name}/kernel"]]
        if f"{layer_name}/bias" in converted:
            values.append(converted[f"{layer_name}/bias"])
        layer.set_weights(values)
    return model


# ---------------------------------------------------------------------------------------------
# The chip in the graph: our crops -> dlib's chip by one fixed similarity

# dlib's chip in our crop: normalised chip coordinates v in [0, 1]^2 (pixel centres at
# (j + 0.5) / 150) map to normalised crop coordinates u = CHIP_IN_CROP @ [v, 1] (centres at
# (i + 0.5) / S). Measured with `measure_chip_transform` on 3,000 UTKFace crops (every 7th
# of ../shared/faces/utkface in name order, 200x200, framed like `align.py`'s canonical eye
# points) where dlib's frontal detector found exactly one face: dlib's 5-point landmarks,
# `get_face_chip_details(size=150, padding=0.25)`, the median of each similarity parameter.
# tests/models/test_dlib_resnet.py::test_chip_transform_constants_remeasure re-measures them (slow).
# Result (2,955 of 3,000 crops): scale 1.0882, rotation 0.10 degrees; the chip is a little
# larger than the crop, so its rim reads zeros, as dlib's own chips of these crops do.
CHIP_IN_CROP = np.array([[1.08820, -0.00196, -0.04338],
                         [0.00196, 1.08820, -0.03873]])


def chip_to_crop_matrix(details, crop_width: int, crop_height: int) -> np.ndarray:
    """The [2, 3] similarity from dlib chip normalised coordinates to crop normalised ones.

    Args:
        details: a `dlib.chip_details` (from `dlib.get_face_chip_details`).
        crop_width, crop_height: the crop's size in pixels.
    """
    rect = details.rect
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    # dlib's get_mapping_to_chip: the rect's corners, rotated by `angle` about its centre,
    # go to the chip's corner pixels.
    corners = np.array([(rect.left(), rect.top()), (rect.right(), rect.top()),
                        (rect.right(), rect.bottom())])
    image_points = (corners - centre) @ rotation.T + centre
    last_row, last_col = details.rows - 1, details.cols - 1
    chip_points = np.array([(0, 0), (last_col, 0), (last_col, last_row)], np.float64)
    # Solve image = A @ [chip, 1] (pixel indices), then move both to normalised coordinates.
    design = np.hstack([chip_points, np.ones((3, 1))])
    pixels = np.linalg.solve(design, image_points).T  # [2, 3]
    to_chip = np.array([[details.cols, 0, -0.5], [0, details.rows, -0.5], [0, 0, 1]])
    from_crop = np.array([[1 / crop_width, 0, 0.5 / crop_width],
                          [0, 1 / crop_height, 0.5 / crop_height]])
    return from_crop @ np.vstack([pixels, [0, 0, 1]]) @ to_chip


def measure_chip_transform(crops, detector=None, landmarks=None) -> tuple[np.ndarray, int]:
    """Measures where dlib's 5-point chip sits in face crops, as one similarity.

    Args:
        crops: iterable of uint8 RGB crops [H, W, 3] framed like ours (eyes at the canonical
            points of `align.py`).
        detector, landmarks: dlib's frontal face detector and 5-point shape predictor (loaded
            from dlib and face_recognition_models by default).

    Returns:
        ([2, 3] chip-to-crop similarity in normalised coordinates, the median of each of its
        four parameters over the crops; the number of crops with exactly one detected face,
        the only ones used).
    """
    import dlib

    detector = detector or dlib.get_frontal_face_detector()
    if landmarks is None:
        import face_recognition_models

        landmarks = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location())
    parameters = []
    for crop in crops:
        crop = np.ascontiguousarray(crop)
        faces = detector(crop, 0)
        if len(faces) != 1:
            continue
        details = dlib.get_face_chip_details(landmarks(crop, faces[0]), size=INPUT_SIZE,
                                             padding=0.25)
        matrix = chip_to_crop_matrix(details, crop.shape[1], crop.shape[0])
        parameters.append([(matrix[0, 0] + matrix[1, 1]) / 2, (matrix[1, 0] - matrix[0, 1]) / 2,
                           matrix[0, 2], matrix[1, 2]])
    if not parameters:
        raise ValueError("measure_chip_transform: dlib found a single face in none of the crops")
    scale_cos, scale_sin, shift_x, shift_y = np.median(np.asarray(parameters), axis=0)
    return (np.array([[scale_cos, -scale_sin, shift_x], [scale_sin, scale_cos, shift_y]]),
            len(parameters))


@keras.saving.register_keras_serializable(package="semiadv")
class FixedAffineWarp(keras.layers.Layer):
    """Bilinear resampling of [N, H, W, C] images through one fixed affine map.

    Output pixel centres, in normalised coordinates v in [0, 1]^2, sample the input at
    `matrix @ [v, 1]` (normalised too, so the layer fits any input size); samples outside the
    input read 0, as dlib's chips do. It is a fixed sparse linear map built from gathers, so
    the gradient is its exact transpose and reaches the input. The images are made
    pixel-major ([H*W, N*C]) so that each of the 4 corners is one row gather, whose gradient
    is one segment sum: 2.5-3x faster forward and backward than gathering along the pixel
    axis of [N, H*W, C]. (A sparse-dense matmul was as fast, but XLA cannot compile it.)
    """

    def __init__(self, output_size: int, matrix, **kwargs):
        super().__init__(**kwargs)
        self.output_size = int(output_size)
        self.matrix = [[float(value) for value in row] for row in np.asarray(matrix)]
        if np.asarray(self.matrix).shape != (2, 3):
            raise ValueError(f"FixedAffineWarp: matrix must be [2, 3], got {matrix}")

    def build(self, input_shape):
        height, width = int(input_shape[1]), int(input_shape[2])
        size = self.output_size
        centres = (np.arange(size) + 0.5) / size
        v_x, v_y = np.meshgrid(centres, centres)
        grid = np.stack([v_x.ravel(), v_y.ravel(), np.ones(size * size)])
        u_x, u_y = np.asarray(self.matrix) @ grid
        x, y = u_x * width - 0.5, u_y * height - 0.5
        x0, y0 = np.floor(x), np.floor(y)
        indices, weights = [], []
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            cx, cy = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - cx)) * (1 - np.abs(y - cy))
            inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
            indices.append(np.clip(cy, 0, height - 1) * width + np.clip(cx, 0, width - 1))
            weights.append(np.where(inside, weight, 0.0))
        self._indices = np.stack(indices).astype(np.int32)  # [4, P]
        self._weights = np.stack(weights).astype(np.float32)[..., None]  # [4, P, 1]
        self.built = True

    def call(self, images):
        import tensorflow as tf

        height, width, channels = images.shape[1:]
        size = self.output_size
        # Pixels first, [H*W, N*C]: every image and channel is a column of each gather.
        pixels = tf.reshape(tf.transpose(tf.cast(images, tf.float32), [1, 2, 0, 3]),
                            [height * width, -1])
        sampled = tf.add_n([tf.gather(pixels, self._indices[corner]) * self._weights[corner]
                            for corner in range(4)])
        sampled = tf.transpose(tf.reshape(sampled, [size, size, -1, channels]), [2, 0, 1, 3])
        return tf.cast(sampled, images.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size, self.output_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size, "matrix": self.matrix}


def build_dlib_matcher(image_size: int, channels: int = 3, weights: Optional[bool] = True,
                       path: Optional[os.PathLike] = None, chip_in_crop=None,
                       name: str = "dlib_matcher") -> keras.Model:
    """dlib's face recognition ResNet on our crops: a fixed warp to dlib's chip, then the port.

    Args:
        image_size: side S of our square crops (framed like `align.py`'s).
        channels: 3 (RGB) or 1 (gray, repeated to RGB).
        weights: as for `build_dlib_resnet`.
        path: the .dat file; `face_recognition_models`'s copy by default.
        chip_in_crop: [2, 3] chip-to-crop similarity; `CHIP_IN_CROP` by default.
        name: the model's name.

    Returns:
        A model mapping [N, S, S, C] in [0, 1] to dlib's 128-d descriptors, differentiable
        in its input.
    """
    if channels not in (1, 3):
        raise ValueError(f"build_dlib_matcher: channels must be 1 or 3, got {channels}")
    matrix = CHIP_IN_CROP if chip_in_crop is None else chip_in_crop
    inputs = keras.Input((image_size, image_size, channels), name="image")
    chip = FixedAffineWarp(INPUT_SIZE, matrix, name="to_dlib_chip")(inputs)
    if channels == 1:
        chip = keras.layers.Concatenate(name="gray_to_rgb")([chip, chip, chip])
    descriptor = build_dlib_resnet(weights, path)(chip)
    return keras.Model(inputs, descriptor, name=name)


# ---------------------------------------------------------------------------------------------
# Identity under jitter: the SAN's match term with dlib's network


def _interpolation_rows(coordinates, size: int):
    """[N, P, size] linear interpolation weights of pixel coordinates [N, P] along one axis.

    Row p of example n holds 1 - f and f at floor(c) and floor(c) + 1 (f = c - floor(c)),
    indices clamped to the image (edges repeated).
    """
    import tensorflow as tf

    start = tf.floor(coordinates)
    rows = 0.0
    for offset in (0.0, 1.0):
        corner = start + offset
        weight = 1 - tf.abs(coordinates - corner)
        index = tf.cast(tf.clip_by_value(corner, 0, size - 1), tf.int32)
        rows += weight[..., None] * tf.one_hot(index, size)
    return rows


def _blur_rows(kernel, radius: int, size: int):
    """[size, size] matrix of a 1-D blur by `kernel` (2 radius + 1 taps), edges mirrored.

    The same as padding by `radius` in tf.pad's SYMMETRIC mode (edge repeated, then
    mirrored) and convolving VALID.
    """
    import tensorflow as tf

    taps = 2 * radius + 1
    placement = np.zeros((taps, size, size), np.float32)
    for tap in range(taps):
        for output in range(size):
            source = output + tap - radius
            source = -source - 1 if source < 0 else (
                2 * size - source - 1 if source >= size else source)
            placement[tap, output, source] += 1.0
    return tf.tensordot(kernel, tf.constant(placement), 1)


def jittered_views(images, jitter: float, seed=None):
    """The same random small shift, scale and blur of each example in several image batches.

    Taking the match term between jittered views of X and of X' (one draw per example, the
    same for X and X') keeps the SAN from holding dlib's descriptor with pixel-exact features
    that only dlib's weights read: what it keeps must survive the small misalignments and
    blurs that any other matcher's alignment brings. Bilinear sampling (edges repeated) and a
    separable Gaussian blur (edges mirrored), so gradients reach X'.

    Shift and scale have no rotation, so sampling and blur are separable: each view is
    `A_y X A_x^T` per example and channel, with A = blur matrix @ interpolation matrix per
    axis, two batched matmuls (20x faster at 64x64 than the 4-corner gather and depthwise
    blur it replaces, and equal to it to float rounding: tests/models/test_dlib_resnet.py).

    Args:
        images: list of [N, H, W, C] float tensors of one shape.
        jitter: the largest shift, as a share of the side, and scale change (1 +- jitter);
            the blur's sigma is drawn in [0, jitter * H / 3] pixels, once per batch.
        seed: optional op seed.

    Returns:
        The list of jittered batches, in order.
    """
    import tensorflow as tf

    first = images[0]
    height, width, channels = first.shape[1:]
    count = tf.shape(first)[0]
    scale = tf.random.uniform([count, 1], 1.0 - jitter, 1.0 + jitter, seed=seed)
    shift_x = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    shift_y = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    sigma = tf.random.uniform([], 0.0, jitter * height / 3.0, seed=seed)
    # Output pixel centre -> input: about the image centre, scaled and shifted; per axis.
    columns = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    rows = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    x = (columns / scale + 0.5 + shift_x) * width - 0.5  # [N, W] pixel indices
    y = (rows / scale + 0.5 + shift_y) * height - 0.5  # [N, H]
    radius = max(1, int(np.ceil(jitter * height)))
    if radius > min(height, width):
        raise ValueError(f"jittered_views: jitter {jitter} blurs {radius} pixels, more than "
                         f"the {height}x{width} images")
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel /= tf.reduce_sum(kernel)
    mix_y = tf.matmul(_blur_rows(kernel, radius, height), _interpolation_rows(y, height))
    mix_x = tf.matmul(_blur_rows(kernel, radius, width), _interpolation_rows(x, width))
    outputs = []
    for batch in images:
        dtype = batch.dtype
        batch = tf.cast(batch, tf.float32)
        # Rows: [N, H, H] @ [N, H, W*C]; then columns, with W moved in front.
        moved = tf.matmul(mix_y, tf.reshape(batch, [-1, height, width * channels]))
        moved = tf.transpose(tf.reshape(moved, [-1, height, width, channels]), [0, 2, 1, 3])
        moved = tf.matmul(mix_x, tf.reshape(moved, [-1, width, height * channels]))
        moved = tf.transpose(tf.reshape(moved, [-1, width, height, channels]), [0, 2, 1, 3])
        outputs.append(tf.cast(moved, dtype))
    return outputs
