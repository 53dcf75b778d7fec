"""Networks of the semi-adversarial network (SAN) and the models it is judged by.

Every builder is a plain function returning a functional `keras.Model` with explicit layer
names, so models round-trip through `get_config` / `.keras` files and load with
`keras.models.load_model(path, safe_mode=True)` (no Lambda layers, no custom layers).

Images are float32 in [0, 1], shaped [batch, image_size, image_size, channels].

- `build_autoencoder`: the SAN convolutional autoencoder with its prototype combiner
  (Mirjalili et al., ICB 2018); one encoder/decoder pass yields X'_SM and X'_OP.
- `build_perturber`: the inference view of the autoencoder (same layers, same weights).
- `build_gender_classifier`: the paper's auxiliary gender CNN.
- `build_vgg_gender_classifier`: a VGG-style, batch-normalised gender classifier: an extra
  auxiliary classifier of the Ensemble SAN (`TrainConfig.gender_ensemble`).
- `build_matcher`: a VGG-Face-style (Parkhi et al., BMVC 2015) embedding network.
- `build_independent_gender_classifier`, `build_independent_matcher`: residual networks with
  a different architecture, used as "unseen" attackers / matchers in evaluation.
"""

import math
import numbers

import keras

_SUPPORTED_CHANNELS = (1, 3)
_MIN_IMAGE_SIZE = 16
# Pooled blocks stop before the feature map gets smaller than this, so small test images
# (16x16) get shallow networks while 224x224 faces get the full depth.
_MIN_FEATURE_SIZE = 2

_GENDER_BLOCK_FILTERS = (32, 64, 128, 256, 256)
_GENDER_TOP_FILTERS = 512
_VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_VGG_GENDER_BLOCKS = ((32, 2), (64, 2), (128, 2), (256, 2), (256, 2))
_VGG_GENDER_DENSE_UNITS = 256
_VGG_DENSE_UNITS = 4096
_RESNET_STEM_FILTERS = 16
_RESNET_STAGE_FILTERS = (32, 64, 128, 256, 512)
UPSAMPLINGS = ("nearest", "bilinear")
# What the encoder sees beside the face (`build_autoencoder`'s `encoder_prototype`).
ENCODER_PROTOTYPES = ("same", "own", "difference")


# ---------------------------------------------------------------------------------------------
# Validation and sizing helpers.
# ---------------------------------------------------------------------------------------------


def _validate_image_shape(image_size, channels, multiple_of=1):
    """Raises ValueError unless the image shape is one the networks support."""
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < _MIN_IMAGE_SIZE
        or image_size % multiple_of
    ):
        requirement = f"an integer >= {_MIN_IMAGE_SIZE}"
        if multiple_of > 1:
            requirement += f" divisible by {multiple_of}"
        raise ValueError(f"image_size must be {requirement}, got {image_size!r}.")
    if channels not in _SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be one of {_SUPPORTED_CHANNELS}, got {channels!r}.")


def _validate_width(width):
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}.")


def _scaled(filters, width):
    """Scales a filter or unit count by `width`, keeping at least 4."""
    return max(4, int(round(filters * width)))


def _num_downsamplings(image_size, max_blocks, round_up=False):
    """How many 2x downsamplings keep the feature map at least `_MIN_FEATURE_SIZE` wide.

    Args:
        image_size: Input height/width.
        max_blocks: Upper bound (the depth of the full-size network).
        round_up: True for stride-2 "same" convolutions (ceil), False for max pooling with
            "valid" padding (floor).
    """
    size, blocks = image_size, 0
    while blocks < max_blocks:
        size = math.ceil(size / 2) if round_up else size // 2
        if size < _MIN_FEATURE_SIZE:
            break
        blocks += 1
    return blocks


def _image_input(image_size, channels, name="image"):
    return keras.Input(shape=(image_size, image_size, channels), name=name)


# ---------------------------------------------------------------------------------------------
# SAN autoencoder and perturber.
# ---------------------------------------------------------------------------------------------


def _encoder_decoder_layer_names(num_encoder_blocks, num_decoder_blocks):
    """Names of the encoder/decoder layers, in the order they are applied."""
    names = []
    for index in range(1, num_encoder_blocks + 1):
        names += [f"encoder_conv{index}", f"encoder_act{index}", f"encoder_pool{index}"]
    for index in range(1, num_decoder_blocks + 1):
        names += [f"decoder_conv{index}", f"decoder_act{index}", f"decoder_upsample{index}"]
    return names


def _make_encoder_decoder_layers(encoder_filters, decoder_filters, upsampling):
    layers = []
    for index, filters in enumerate(encoder_filters, start=1):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", name=f"encoder_conv{index}"),
            keras.layers.LeakyReLU(negative_slope=0.2, name=f"encoder_act{index}"),
            keras.layers.AveragePooling2D(2, name=f"encoder_pool{index}"),
        ]
    for index, filters in enumerate(decoder_filters, start=1):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", name=f"decoder_conv{index}"),
            keras.layers.LeakyReLU(negative_slope=0.2, name=f"decoder_act{index}"),
            keras.layers.UpSampling2D(2, interpolation=upsampling,
                                      name=f"decoder_upsample{index}"),
        ]
    return layers


def _apply_in_order(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def build_autoencoder(
    image_size,
    channels,
    encoder_filters=(8, 12),
    decoder_filters=(256, 128),
    residual=False,
    upsampling="nearest",
    max_change=1.0,
    encoder_prototype="same",
    name="autoencoder",
):
    """Builds the SAN convolutional autoencoder with its prototype combiner.

    The encoder sees the face concatenated (on channels) with the same-gender prototype. One
    encoder/decoder pass produces features that a shared 1x1 "combiner" convolution merges
    with a prototype: with the same-gender prototype it gives X'_SM, with the opposite-gender
    prototype X'_OP. Sharing the pass (rather than running the autoencoder twice) is what the
    paper does and halves the cost.

    Args:
        image_size: Height and width of the square images; >= 16 and divisible by
            2 ** len(encoder_filters) (4 by default) so decoding restores the input size.
        channels: 1 (grey) or 3 (RGB).
        encoder_filters: Filters of the conv3x3 -> LeakyReLU -> AveragePooling2D blocks.
        decoder_filters: Filters of the conv3x3 -> LeakyReLU -> UpSampling2D blocks; as many
            blocks as the encoder has.
        residual: False for the paper's output, X' = sigmoid(combiner(features ⊕ P)): the
            decoder re-synthesises the whole face through the bottleneck. True for a skip
            connection from the input, X' = clip(X + tanh(combiner(features ⊕ P)), 0, 1):
            the network outputs a change to the face, so detail the bottleneck cannot carry
            (what face matchers rely on) passes through untouched. The residual combiner
            starts at zero, so an untrained residual autoencoder returns its input.
        upsampling: "nearest" (the paper's) or "bilinear" interpolation of the decoder's
            upsampling. The last upsampling feeds the 1x1 combiner directly, so with
            "nearest" every output is built from 2x2 blocks of constant features: a grid
            texture that a residual output adds onto the face, and that face matchers read.
        max_change: residual only: the largest change per pixel and channel, X' = clip(X +
            max_change x tanh(...), 0, 1). Below 1 it bounds what the SAN can paint on a
            face whatever the losses ask (1: no bound, no layer).
        encoder_prototype: "same" (the paper's): the encoder sees the face with the
            same-gender prototype and one decoded pass serves both outputs, so X'_OP differs
            from X'_SM only by the combiner's 1x1 mix of the two prototypes: one fixed
            overlay for every face of a gender. "own": each output's encoder sees the face
            with that output's prototype (the same layers run twice), so the change towards
            the other gender can depend on the face: twice the autoencoder's cost.
            "difference": like "own", but each pass (encoder and combiner) sees its
            prototype's difference from the same-gender one, P - P_SM: zero for X'_SM.
            With "own" the SM pass of a male face sees P_male, the OP pass of a female face
            too, so the shared layers learn "move towards P_male" and SM reads more of its
            gender than the face; here SM's conditioning says "no change" for every face.
        name: Model name.

    Returns:
        A `keras.Model` taking a dict `{"image", "same_prototype", "opposite_prototype"}`
        (each [B, H, W, C] in [0, 1]) and returning a dict `{"same": X'_SM,
        "opposite": X'_OP}` of [B, H, W, C] float32 images in (0, 1).

    Raises:
        ValueError: If the image shape or the block lists are unsupported.
    """
    encoder_filters, decoder_filters = tuple(encoder_filters), tuple(decoder_filters)
    if not encoder_filters or len(encoder_filters) != len(decoder_filters):
        raise ValueError(
            "encoder_filters and decoder_filters must be non-empty and equally long, got "
            f"{encoder_filters!r} and {decoder_filters!r}."
        )
    _validate_image_shape(image_size, channels, multiple_of=2 ** len(encoder_filters))
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}.")
    if not 0 < max_change <= 1 or (max_change < 1 and not residual):
        raise ValueError(f"max_change must be in (0, 1], and below 1 only for a residual "
                         f"autoencoder; got {max_change} (residual={residual}).")

    image = _image_input(image_size, channels, "image")
    same_prototype = _image_input(image_size, channels, "same_prototype")
    opposite_prototype = _image_input(image_size, channels, "opposite_prototype")

    if encoder_prototype not in ENCODER_PROTOTYPES:
        raise ValueError(f"encoder_prototype must be one of {ENCODER_PROTOTYPES}, got "
                         f"{encoder_prototype!r}.")

    same_condition, opposite_condition = same_prototype, opposite_prototype
    if encoder_prototype == "difference":
        same_condition = keras.layers.Subtract(name=SAME_DIFFERENCE)(
            [same_prototype, same_prototype])
        opposite_condition = keras.layers.Subtract(name="opposite_difference")(
            [opposite_prototype, same_prototype])
    layers = _make_encoder_decoder_layers(encoder_filters, decoder_filters, upsampling)
    x = keras.layers.Concatenate(name="encoder_input_concat")([image, same_condition])
    features = _apply_in_order(layers, x)
    opposite_features = features
    if encoder_prototype != "same":  # The same layers (weights) on the face ⊕ its condition.
        x = keras.layers.Concatenate(name=OPPOSITE_ENCODER_CONCAT)([image, opposite_condition])
        opposite_features = _apply_in_order(layers, x)

    # float32 output so the images stay float32 under a mixed-precision policy.
    if residual:
        combiner = keras.layers.Conv2D(channels, 1, activation="tanh", kernel_initializer="zeros",
                                       dtype="float32", name="combiner")
    else:
        combiner = keras.layers.Conv2D(channels, 1, activation="sigmoid", dtype="float32",
                                       name="combiner")
    same = _combine(combiner, features, same_condition, image, residual, max_change, "same_")
    opposite = _combine(combiner, opposite_features, opposite_condition, image, residual,
                        max_change, "opposite_")
    return keras.Model(
        inputs={
            "image": image,
            "same_prototype": same_prototype,
            "opposite_prototype": opposite_prototype,
        },
        outputs={"same": same, "opposite": opposite},
        name=name,
    )


# Weightless layers after the combiner of a residual autoencoder, named `<prefix><suffix>`.
_RESIDUAL_SUFFIXES = ("bound", "residual", "clip")


def _combine(combiner, features, prototype, image, residual, max_change, prefix):
    """The combiner's output image for one prototype: X' (see `build_autoencoder`)."""
    x = keras.layers.Concatenate(name=f"{prefix}combiner_concat")([features, prototype])
    output = combiner(x)
    if residual and max_change < 1:
        output = keras.layers.Rescaling(max_change, dtype="float32", name=f"{prefix}bound")(output)
    if residual:
        output = keras.layers.Add(dtype="float32", name=f"{prefix}residual")([image, output])
        # ReLU(max_value=1) is clip(x, 0, 1) as a built-in layer: no Lambda, no custom layer.
        output = keras.layers.ReLU(max_value=1.0, dtype="float32", name=f"{prefix}clip")(output)
    return output


# The layer only autoencoders built with encoder_prototype "own" or "difference" have, and
# the one only "difference" has.
OPPOSITE_ENCODER_CONCAT = "opposite_encoder_input_concat"
SAME_DIFFERENCE = "same_difference"


def encoder_prototype_of(autoencoder):
    """The `encoder_prototype` `autoencoder` (from `build_autoencoder`) was built with."""
    names = {layer.name for layer in autoencoder.layers}
    if SAME_DIFFERENCE in names:
        return "difference"
    return "own" if OPPOSITE_ENCODER_CONCAT in names else "same"


def conditions(autoencoder, same_prototype, prototypes):
    """What `autoencoder`'s passes see beside the face for each of `prototypes` (a dict of
    [B, H, W, C] tensors): the prototypes themselves, or with encoder_prototype "difference"
    each one's difference from `same_prototype` (fresh weightless layers)."""
    if encoder_prototype_of(autoencoder) != "difference":
        return dict(prototypes)
    return {kind: keras.layers.Subtract(dtype="float32", name=f"{kind}_condition")(
        [prototype, same_prototype]) for kind, prototype in prototypes.items()}


def decode(autoencoder, image, condition):
    """The decoded features of `image` ⊕ `condition` through `autoencoder`'s encoder and
    decoder (its layers and weights, shared)."""
    layer_names = _encoder_decoder_layer_names(
        _count_blocks(autoencoder, "encoder_conv"), _count_blocks(autoencoder, "decoder_conv"))
    x = autoencoder.get_layer("encoder_input_concat")([image, condition])
    return _apply_in_order([autoencoder.get_layer(n) for n in layer_names], x)


def is_residual(autoencoder):
    """Whether `autoencoder` (from `build_autoencoder`) adds its output to the input face."""
    return any(layer.name == "same_residual" for layer in autoencoder.layers)


def max_change_of(autoencoder):
    """The `max_change` `autoencoder` (from `build_autoencoder`) was built with."""
    bound = [layer for layer in autoencoder.layers if layer.name == "same_bound"]
    return float(bound[0].scale) if bound else 1.0


def computes_in_float32(layer_name):
    """Whether a layer of these networks must stay float32 under a mixed-precision policy.

    The images the losses and the export read come out of them: the autoencoder's combiner
    and residual layers, the classifiers' logits and the matchers' embeddings.
    """
    return (layer_name in ("combiner", "logits", "embedding", "l2_normalize")
            or layer_name.endswith(_RESIDUAL_SUFFIXES))


def combine(autoencoder, features, prototype, image, prefix):
    """X' from decoded `features`, a prototype and the input `image`, with `autoencoder`'s
    combiner (shared weights) and, when it is residual, fresh skip layers named `prefix`*.

    Lets inference views (`build_perturber`, the export) decode once and combine with any
    prototype, whichever output the autoencoder was built with.
    """
    return _combine(autoencoder.get_layer("combiner"), features, prototype, image,
                    is_residual(autoencoder), max_change_of(autoencoder), prefix)


def _count_blocks(model, prefix):
    count = 0
    while any(layer.name == f"{prefix}{count + 1}" for layer in model.layers):
        count += 1
    return count


def build_perturber(autoencoder, name="perturber"):
    """Builds the inference view of a SAN autoencoder, sharing its layers and weights.

    The encoder sees image ⊕ `encoder_prototype` (during training the same-gender prototype,
    or with `encoder_prototype="own"` the output's own prototype: then pass the same image
    to both inputs; with "difference" pass the output's prototype minus the same-gender one,
    `conditions`, to both); the combiner merges the decoded features with `combiner_prototype` (at
    inference the neutral or the opposite prototype). Training the autoencoder therefore
    trains the perturber: no weights are copied.

    Args:
        autoencoder: A model returned by `build_autoencoder`.
        name: Model name.

    Returns:
        A `keras.Model` taking a dict `{"image", "encoder_prototype", "combiner_prototype"}`
        (each [B, H, W, C]) and returning the perturbed images [B, H, W, C] float32.
    """
    image_shape = tuple(autoencoder.get_layer("image").batch_shape[1:])
    image = keras.Input(shape=image_shape, name="image")
    encoder_prototype = keras.Input(shape=image_shape, name="encoder_prototype")
    combiner_prototype = keras.Input(shape=image_shape, name="combiner_prototype")

    features = decode(autoencoder, image, encoder_prototype)
    # Fresh (weightless) concatenation and skip layers: the autoencoder's are named after
    # the prototype they carry, which here may be the neutral one.
    perturbed = combine(autoencoder, features, combiner_prototype, image, "")
    return keras.Model(
        inputs={
            "image": image,
            "encoder_prototype": encoder_prototype,
            "combiner_prototype": combiner_prototype,
        },
        outputs=perturbed,
        name=name,
    )


# ---------------------------------------------------------------------------------------------
# The paper's auxiliary gender classifier.
# ---------------------------------------------------------------------------------------------


def build_gender_classifier(image_size, channels, width=1.0, dropout=0.5, name="gender_classifier"):
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

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to float32 logits [B, 2] (class 1 = male).
    """
    _validate_image_shape(image_size, channels)
    _validate_width(width)
    num_blocks = _num_downsamplings(image_size, len(_GENDER_BLOCK_FILTERS))

    image = _image_input(image_size, channels)
    x = image
    for index, filters in enumerate(_GENDER_BLOCK_FILTERS[:num_blocks], start=1):
        kernel_size = 5 if index == 1 else 3
        x = keras.layers.Conv2D(
            _scaled(filters, width), kernel_size, padding="same", name=f"block{index}_conv"
        )(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"block{index}_act")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    x = keras.layers.Conv2D(
        _scaled(_GENDER_TOP_FILTERS, width), 3, padding="same", name="top_conv"
    )(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="top_act")(x)
    x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dense(2, dtype="float32", name="logits")(x)
    return keras.Model(inputs=image, outputs=logits, name=name)


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
    _validate_image_shape(image_size, channels)
    _validate_width(width)
    num_blocks = _num_downsamplings(image_size, len(_VGG_GENDER_BLOCKS))

    image = _image_input(image_size, channels)
    x = image
    for block, (filters, num_convs) in enumerate(_VGG_GENDER_BLOCKS[:num_blocks], start=1):
        for conv in range(1, num_convs + 1):
            x = keras.layers.Conv2D(_scaled(filters, width), 3, padding="same", use_bias=False,
                                    name=f"block{block}_conv{conv}")(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(_scaled(_VGG_GENDER_DENSE_UNITS, width), activation="relu",
                           name="fc")(x)
    x = keras.layers.Dropout(dropout, name="fc_dropout")(x)
    logits = keras.layers.Dense(2, dtype="float32", name="logits")(x)
    return keras.Model(inputs=image, outputs=logits, name=name)


# ---------------------------------------------------------------------------------------------
# VGG-Face-style matcher.
# ---------------------------------------------------------------------------------------------


def build_matcher(image_size, channels, embedding_dim=128, width=1.0, name="matcher"):
    """Builds a VGG-Face-style face matcher producing L2-normalised embeddings.

    Blocks of conv3x3 + ReLU (64, 128, 256, 512, 512 filters; 2, 2, 3, 3, 3 convolutions),
    each followed by 2x2 max pooling, then two ReLU dense layers (4096 units at width 1) and
    a linear embedding layer, as in Parkhi et al. (2015) trained with a triplet loss. Blocks
    are dropped from the end for small images so the feature map never shrinks below 2x2.

    Args:
        image_size: Height and width of the square images, >= 16.
        channels: 1 or 3.
        embedding_dim: Size of the embedding.
        width: Multiplier of every filter and dense unit count (at least 4 are kept).
        name: Model name.

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to unit-norm float32 embeddings
        [B, embedding_dim].
    """
    _validate_image_shape(image_size, channels)
    _validate_width(width)
    num_blocks = _num_downsamplings(image_size, len(_VGG_BLOCKS))

    image = _image_input(image_size, channels)
    x = image
    for block, (filters, num_convs) in enumerate(_VGG_BLOCKS[:num_blocks], start=1):
        for conv in range(1, num_convs + 1):
            x = keras.layers.Conv2D(
                _scaled(filters, width),
                3,
                padding="same",
                activation="relu",
                name=f"block{block}_conv{conv}",
            )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    # Flatten (not global pooling) like VGG: where a feature sits on the face matters.
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(_scaled(_VGG_DENSE_UNITS, width), activation="relu", name="fc6")(x)
    x = keras.layers.Dense(_scaled(_VGG_DENSE_UNITS, width), activation="relu", name="fc7")(x)
    return keras.Model(inputs=image, outputs=_embedding_head(x, embedding_dim), name=name)


def _embedding_head(x, embedding_dim):
    x = keras.layers.Dense(embedding_dim, dtype="float32", name="embedding")(x)
    return keras.layers.UnitNormalization(axis=-1, dtype="float32", name="l2_normalize")(x)


# ---------------------------------------------------------------------------------------------
# Independent ("unseen") residual networks for evaluation.
# ---------------------------------------------------------------------------------------------


def _conv_bn(x, filters, kernel_size, strides, name):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def _residual_block(x, filters, strides, name):
    """A ResNet basic block: two conv3x3+BN, a projection shortcut when the shape changes."""
    shortcut = x
    if strides != 1:
        # ResNet-D's shortcut: average-pool, then a 1x1 conv at stride 1. A 1x1 conv at
        # stride 2 also loses 3/4 of the pixels, and its oneDNN backward pass corrupts the
        # heap on TF 2.21 at 64x64 (double free; tests/models/test_networks.py keeps it out).
        shortcut = keras.layers.AveragePooling2D(strides, name=f"{name}_shortcut_pool")(shortcut)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(shortcut, filters, 1, 1, f"{name}_shortcut")
    x = _conv_bn(x, filters, 3, strides, f"{name}_1")
    x = keras.layers.ReLU(name=f"{name}_1_relu")(x)
    x = _conv_bn(x, filters, 3, 1, f"{name}_2")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out_relu")(x)


def _residual_trunk(image, image_size, width, blocks_per_stage):
    """Stem conv then one stride-2 stage per halving the image size allows, then GAP."""
    x = _conv_bn(image, _scaled(_RESNET_STEM_FILTERS, width), 3, 1, "stem")
    x = keras.layers.ReLU(name="stem_relu")(x)
    num_stages = _num_downsamplings(image_size, len(_RESNET_STAGE_FILTERS), round_up=True)
    for stage, filters in enumerate(_RESNET_STAGE_FILTERS[:num_stages], start=1):
        for block in range(1, blocks_per_stage + 1):
            strides = 2 if block == 1 else 1
            x = _residual_block(x, _scaled(filters, width), strides, f"stage{stage}_block{block}")
    return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)


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
    _validate_image_shape(image_size, channels)
    _validate_width(width)
    image = _image_input(image_size, channels)
    x = _residual_trunk(image, image_size, width, blocks_per_stage=1)
    logits = keras.layers.Dense(2, dtype="float32", name="logits")(x)
    return keras.Model(inputs=image, outputs=logits, name=name)


def build_independent_matcher(
    image_size, channels, embedding_dim=128, width=1.0, name="independent_matcher"
):
    """Builds a residual face matcher, architecturally unlike the VGG-style one.

    Two residual blocks per stride-2 stage, global average pooling, a linear embedding layer
    and L2 normalisation.

    Args:
        image_size: Height and width of the square images, >= 16.
        channels: 1 or 3.
        embedding_dim: Size of the embedding.
        width: Multiplier of every filter count (at least 4 are kept).
        name: Model name.

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to unit-norm float32 embeddings
        [B, embedding_dim].
    """
    _validate_image_shape(image_size, channels)
    _validate_width(width)
    image = _image_input(image_size, channels)
    x = _residual_trunk(image, image_size, width, blocks_per_stage=2)
    return keras.Model(inputs=image, outputs=_embedding_head(x, embedding_dim), name=name)
