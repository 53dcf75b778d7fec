"""Gender classifiers: the SAN's auxiliary CNN, a VGG-style ensemble member, and an unseen one.

Each maps images [B, H, W, C] in [0, 1] to float32 logits [B, 2] (class 1 = male).

- `build_gender_classifier`: the paper's auxiliary gender CNN.
- `build_vgg_gender_classifier`: a VGG-style, batch-normalised gender classifier: an extra
  auxiliary classifier of the Ensemble SAN (`TrainConfig.gender_ensemble`).
- `build_independent_gender_classifier`: a residual network of another architecture, used as
  an "unseen" attacker in evaluation.
"""

import keras

from semiadv.models import blocks

_GENDER_BLOCK_FILTERS = (32, 64, 128, 256, 256)
# ITU-R BT.601 luma of RGB (OpenCV's RGB2GRAY, which the evaluation's HOG readers use), as the
# kernel [1, 1, 3, 1] of the `grey` classifiers' first, fixed layer.
LUMA = ((((0.299,), (0.587,), (0.114,)),),)
_GENDER_TOP_FILTERS = 512
_VGG_GENDER_BLOCKS = ((32, 2), (64, 2), (128, 2), (256, 2), (256, 2))
_VGG_GENDER_DENSE_UNITS = 256


def _logits(x, classes=2):
    """The logits layer, float32 under any dtype policy (the losses read it)."""
    return keras.layers.Dense(classes, dtype="float32", name="logits")(x)


def build_attribute_classifier(image_size, channels, classes, width=1.0, dropout=0.5,
                               name="attribute_classifier", grey=False):
    """The paper's auxiliary CNN (`build_gender_classifier`) with `classes` logits: the
    age group and race classifiers of a choice-conditioned SAN (`TrainConfig.hide_attributes`).

    Args: as `build_gender_classifier`, and `grey`: read only the luma of RGB faces (a fixed,
        untrained 1x1 convolution with ITU-R BT.601 weights, as OpenCV's grey conversion), so
        that colour alone cannot move the classifier (`TrainConfig.attribute_grey`).

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to float32 logits [B, classes].
    """
    if classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {classes}")
    return build_gender_classifier(image_size, channels, width=width, dropout=dropout,
                                   name=name, classes=classes, grey=grey)


def build_gender_classifier(image_size, channels, width=1.0, dropout=0.5,
                            name="gender_classifier", classes=2, grey=False):
    """Builds the SAN paper's auxiliary gender CNN.

    conv5x5(32) then conv3x3(64, 128, 256, 256), each followed by LeakyReLU and 2x2 max
    pooling; then conv3x3(512), dropout, global average pooling and a 2-way dense layer.
    Pooled blocks are dropped from the end for small images so the feature map never
    shrinks below 2x2.

    Args:
        image_size: Height and width of the square images, >= 16.
        channels: 1 or 3.
        width: Multiplier of every filter count (at least 4 filters are kept).
        dropout: Dropout rate before pooling.
        name: Model name.
        classes: Logits: 2 for gender (`build_attribute_classifier` for more).
        grey: read only the luma of RGB images (`build_attribute_classifier`).

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to float32 logits [B, 2] (class 1 = male).
    """
    image = blocks.checked_image_input(image_size, channels, width)
    x = image
    if grey and channels == 3:
        x = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="luma",
                                kernel_initializer=keras.initializers.Constant(LUMA))(x)
    for index, filters in enumerate(blocks.fitting_blocks(image_size, _GENDER_BLOCK_FILTERS), 1):
        kernel_size = 5 if index == 1 else 3
        x = keras.layers.Conv2D(blocks.scaled(filters, width), kernel_size, padding="same",
                                name=f"block{index}_conv")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"block{index}_act")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    x = keras.layers.Conv2D(blocks.scaled(_GENDER_TOP_FILTERS, width), 3, padding="same",
                            name="top_conv")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="top_act")(x)
    x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs=image, outputs=_logits(x, classes), name=name)


def build_vgg_gender_classifier(image_size, channels, width=1.0, dropout=0.5,
                                name="vgg_gender_classifier"):
    """Builds a VGG-style gender classifier with batch normalisation.

    Blocks of two conv3x3 -> BatchNormalization -> ReLU (32, 64, 128, 256, 256 filters), each
    followed by 2x2 max pooling; then flatten, a ReLU dense layer (256 units at width 1),
    dropout and a 2-way dense layer. Unlike the paper's CNN it normalises batches, uses ReLU,
    and keeps where features sit (flatten, not global pooling), so an ensemble of both is
    diverse. Blocks are dropped from the end for small images so the feature map never shrinks
    below 2x2.

    Args:
        image_size: Height and width of the square images, >= 16.
        channels: 1 or 3.
        width: Multiplier of every filter and dense unit count (at least 4 are kept).
        dropout: Dropout rate before the logits.
        name: Model name.

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to float32 logits [B, 2] (class 1 = male).
    """
    image = blocks.checked_image_input(image_size, channels, width)
    x = image
    specs = blocks.fitting_blocks(image_size, _VGG_GENDER_BLOCKS)
    for block, (filters, num_convs) in enumerate(specs, start=1):
        for conv in range(1, num_convs + 1):
            x = keras.layers.Conv2D(blocks.scaled(filters, width), 3, padding="same",
                                    use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(blocks.scaled(_VGG_GENDER_DENSE_UNITS, width), activation="relu",
                           name="fc")(x)
    x = keras.layers.Dropout(dropout, name="fc_dropout")(x)
    return keras.Model(inputs=image, outputs=_logits(x), name=name)


def build_independent_gender_classifier(
    image_size, channels, width=1.0, name="independent_gender_classifier"
):
    """Builds a small residual gender classifier, architecturally unlike the paper's.

    Used to judge whether perturbations fool gender classifiers the autoencoder never saw:
    batch normalisation, ReLU, stride-2 residual stages and no dropout.

    Args:
        image_size: Height and width of the square images, >= 16.
        channels: 1 or 3.
        width: Multiplier of every filter count (at least 4 are kept).
        name: Model name.

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to float32 logits [B, 2] (class 1 = male).
    """
    image = blocks.checked_image_input(image_size, channels, width)
    x = blocks.residual_trunk(image, image_size, width, blocks_per_stage=1)
    return keras.Model(inputs=image, outputs=_logits(x), name=name)

