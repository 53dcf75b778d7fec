"""dlib's face recognition ResNet as a Keras functional graph of built-in layers.

The network of dlib's `dnn_face_recognition_ex.cpp`:

    loss_metric<fc_no_bias<128, avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

alevel4 is three `ares<32>`, alevel3 `ares_down<64>` and three `ares<64>`, alevel2 and alevel1
`ares_down` and two `ares` at 128 and 256, alevel0 one `ares_down<256>`. A residual block is
`con 3x3 -> affine -> relu -> con 3x3 -> affine`, added to its input and followed by relu; the
`_down` blocks stride their first conv by 2 and add a 2x2/2 average pool of their input.

Input `[N, 150, 150, 3]` RGB in [0, 1], output dlib's 128-d descriptor. The dlib conventions
the port keeps (each checked against dlib itself in tests/models/dlib_resnet/):
- dlib's `con` pads `nr/2` when its stride is 1 and 0 otherwise; its pools pad 0 when strided.
  The file stores the paddings and the port checks them.
- `add_prev` of tensors of different shapes adds them aligned at the origin and treats what is
  missing as 0 (`tt::add`): a `_down` block's skip has half the channels and, at 8x8 -> 3x3 and
  4x4 -> 1x1, one row and column more than the strided conv's output.
- `input_rgb_image` feeds `(pixel - mean) / 256` with the file's per-channel means: folded
  into the (unpadded) stem conv's kernel and bias (`weight_cache`).
- `affine` (batch norm frozen into a scale and shift) follows every conv: it is folded into the
  conv's kernel and bias (`weight_cache`).
"""

from __future__ import annotations

import keras

from semiadv.models.dlib_resnet.dat_file import (
    REINSTALL_HINT,
    DlibLayer,
    DlibModelError,
    DlibNetwork,
)

INPUT_SIZE = 150
DESCRIPTOR_SIZE = 128

# (filters, blocks, first block strided) per level, input side first: alevel4 ... alevel0.
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


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


def check_structure(network: DlibNetwork, path) -> None:
    """Raises DlibModelError, naming `path` and the first difference, unless `network` (from
    `dat_file.read_dat`) has the layers, input size and layer settings of `skeleton()`."""
    kinds = [layer.kind for layer in network.layers]
    expected = _expected_kinds()
    if kinds != expected:
        first = next((i for i, (a, b) in enumerate(zip(kinds, expected)) if a != b),
                     min(len(kinds), len(expected)))
        raise DlibModelError(
            f"{path}: layer {first} is {kinds[first] if first < len(kinds) else 'missing'}, "
            f"expected {expected[first] if first < len(expected) else 'nothing'} "
            f"({len(kinds)} layers, expected {len(expected)}): not dlib's face recognition "
            f"ResNet v1: {REINSTALL_HINT}")
    if network.input_size != (INPUT_SIZE, INPUT_SIZE):
        raise DlibModelError(f"{path}: input size {network.input_size}, expected 150x150")
    for index, (layer, wanted) in enumerate(zip(network.layers, skeleton().layers)):
        config = {key: layer.config[key] for key in wanted.config}
        if config != wanted.config:
            raise DlibModelError(f"{path}: layer {index} ({layer.kind}) is {config}, expected "
                                 f"{wanted.config}: not dlib's face recognition ResNet v1: "
                                 f"{REINSTALL_HINT}")


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


def build_graph(network: DlibNetwork, name: str):
    """The functional graph of `network`'s layers, with no weights set.

    Args:
        network: the file's layers (`dat_file.read_dat`) or `skeleton()`.
        name: the model's name.

    Returns:
        (the `keras.Model`, a dict from each Keras layer name with weights to the dlib layers
        it takes them from: (con_4, affine_) for a convolution, (fc_2,) for "descriptor").
    """
    layers = iter(network.layers)
    sources = {}
    # dlib's input normalisation, (255 x - mean) / 256, is folded into the stem conv's
    # weights (`weight_cache`): the stem is unpadded, so that is exact.
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


def skeleton() -> DlibNetwork:
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
