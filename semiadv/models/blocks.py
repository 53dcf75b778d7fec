"""What the network builders share: input checks, sizing, and the residual blocks.

Images are float32 in [0, 1], shaped [batch, image_size, image_size, channels]. Every layer
gets an explicit name: saved `.keras` files and checkpoints refer to layers by name.
"""

import math
import numbers

import keras

SUPPORTED_CHANNELS = (1, 3)
MIN_IMAGE_SIZE = 16
# Pooled blocks stop before the feature map gets smaller than this, so small test images
# (16x16) get shallow networks while 224x224 faces get the full depth.
MIN_FEATURE_SIZE = 2

_RESNET_STEM_FILTERS = 16
_RESNET_STAGE_FILTERS = (32, 64, 128, 256, 512)


def validate_image_shape(image_size, channels, multiple_of=1):
    """Raises ValueError, naming the value, unless the networks support the image shape.

    Args:
        image_size: Height and width of the square images; an integer >= `MIN_IMAGE_SIZE`.
        channels: One of `SUPPORTED_CHANNELS`.
        multiple_of: What `image_size` must be divisible by.
    """
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < MIN_IMAGE_SIZE
        or image_size % multiple_of
    ):
        requirement = f"an integer >= {MIN_IMAGE_SIZE}"
        if multiple_of > 1:
            requirement += f" divisible by {multiple_of}"
        raise ValueError(f"image_size must be {requirement}, got {image_size!r}.")
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be one of {SUPPORTED_CHANNELS}, got {channels!r}.")


def image_input(image_size, channels, name="image"):
    """A `keras.Input` for [B, image_size, image_size, channels] images."""
    return keras.Input(shape=(image_size, image_size, channels), name=name)


def checked_image_input(image_size, channels, width):
    """The "image" input of a classifier or matcher, after checking its shape and `width`.

    Raises:
        ValueError: If the image shape is unsupported or `width` is not positive.
    """
    validate_image_shape(image_size, channels)
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}.")
    return image_input(image_size, channels)


def scaled(filters, width):
    """Scales a filter or unit count by `width`, keeping at least 4."""
    return max(4, int(round(filters * width)))


def num_downsamplings(image_size, max_blocks, round_up=False):
    """How many 2x downsamplings keep the feature map at least `MIN_FEATURE_SIZE` wide.

    Args:
        image_size: Input height/width.
        max_blocks: Upper bound (the depth of the full-size network).
        round_up: True for stride-2 "same" convolutions (ceil), False for max pooling with
            "valid" padding (floor).
    """
    size, blocks = image_size, 0
    while blocks < max_blocks:
        size = math.ceil(size / 2) if round_up else size // 2
        if size < MIN_FEATURE_SIZE:
            break
        blocks += 1
    return blocks


def fitting_blocks(image_size, block_specs):
    """The leading `block_specs` (one per 2x max pooling) that keep the feature map at least
    `MIN_FEATURE_SIZE` wide: all of them for 224x224 faces, fewer for small test images."""
    return block_specs[:num_downsamplings(image_size, len(block_specs))]


def conv_bn(x, filters, kernel_size, strides, name):
    """A bias-free "same" convolution `<name>_conv` followed by batch norm `<name>_bn`."""
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def residual_block(x, filters, strides, name):
    """A ResNet basic block: two conv3x3+BN, a projection shortcut when the shape changes."""
    shortcut = x
    if strides != 1:
        # ResNet-D's shortcut: average-pool, then a 1x1 conv at stride 1. A 1x1 conv at
        # stride 2 also loses 3/4 of the pixels, and its oneDNN backward pass corrupts the
        # heap on TF 2.21 at 64x64 (double free; tests/models/test_blocks.py keeps it out).
        shortcut = keras.layers.AveragePooling2D(strides, name=f"{name}_shortcut_pool")(shortcut)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(shortcut, filters, 1, 1, f"{name}_shortcut")
    x = conv_bn(x, filters, 3, strides, f"{name}_1")
    x = keras.layers.ReLU(name=f"{name}_1_relu")(x)
    x = conv_bn(x, filters, 3, 1, f"{name}_2")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out_relu")(x)


def residual_trunk(image, image_size, width, blocks_per_stage):
    """Stem conv then one stride-2 stage per halving the image size allows, then GAP.

    Args:
        image: The input tensor [B, H, W, C].
        image_size: H (= W): sets how many stages fit.
        width: Multiplier of every filter count (at least 4 are kept).
        blocks_per_stage: Residual blocks per stage; the first of each strides by 2.

    Returns:
        The pooled features [B, filters of the last stage].
    """
    x = conv_bn(image, scaled(_RESNET_STEM_FILTERS, width), 3, 1, "stem")
    x = keras.layers.ReLU(name="stem_relu")(x)
    num_stages = num_downsamplings(image_size, len(_RESNET_STAGE_FILTERS), round_up=True)
    for stage, filters in enumerate(_RESNET_STAGE_FILTERS[:num_stages], start=1):
        for block in range(1, blocks_per_stage + 1):
            strides = 2 if block == 1 else 1
            x = residual_block(x, scaled(filters, width), strides, f"stage{stage}_block{block}")
    return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
