"""The SAN convolutional autoencoder (Mirjalili et al., ICB 2018) and its inference view.

One encoder/decoder pass yields X'_SM and X'_OP: a shared 1x1 "combiner" convolution merges
the decoded features with the same-gender or the opposite-gender prototype.

- `build_autoencoder`: the trained model, {"image", "same_prototype", "opposite_prototype"}
  -> {"same": X'_SM, "opposite": X'_OP}.
- `build_perturber`: the inference view (same layers, same weights).
- `conditions`, `decode`, `combine`: the pieces the perturber and the export wire up again,
  for any prototype, from a trained autoencoder's layers.
- `encoder_prototype_of`, `is_residual`, `max_change_of`: what a built (or loaded)
  autoencoder was built with, read from its layer names.
"""

import keras

from semiadv.config import ENCODER_PROTOTYPES, UPSAMPLINGS
from semiadv.models import blocks

# The layer only autoencoders built with encoder_prototype "own" or "difference" have, and
# the one only "difference" has.
OPPOSITE_ENCODER_CONCAT = "opposite_encoder_input_concat"
SAME_DIFFERENCE = "same_difference"
# Weightless layers after the combiner of a residual autoencoder, named `<prefix><suffix>`.
RESIDUAL_SUFFIXES = ("bound", "residual", "clip")


def _encoder_decoder_layer_names(num_encoder_blocks, num_decoder_blocks):
    """Names of the encoder/decoder layers, in the order they are applied."""
    names = []
    for index in range(1, num_encoder_blocks + 1):
        names += [f"encoder_conv{index}", f"encoder_act{index}", f"encoder_pool{index}"]
    for index in range(1, num_decoder_blocks + 1):
        names += [f"decoder_conv{index}", f"decoder_act{index}", f"decoder_upsample{index}"]
    return names


def make_encoder_decoder_layers(encoder_filters, decoder_filters, upsampling):
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


def apply_in_order(layers, x):
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
    encoder_filters, decoder_filters = check_arguments(
        image_size, channels, encoder_filters, decoder_filters, upsampling, max_change,
        residual, encoder_prototype)

    image = blocks.image_input(image_size, channels, "image")
    same_prototype = blocks.image_input(image_size, channels, "same_prototype")
    opposite_prototype = blocks.image_input(image_size, channels, "opposite_prototype")

    same_condition, opposite_condition = same_prototype, opposite_prototype
    if encoder_prototype == "difference":
        same_condition = keras.layers.Subtract(name=SAME_DIFFERENCE)(
            [same_prototype, same_prototype])
        opposite_condition = keras.layers.Subtract(name="opposite_difference")(
            [opposite_prototype, same_prototype])
    layers = make_encoder_decoder_layers(encoder_filters, decoder_filters, upsampling)
    x = keras.layers.Concatenate(name="encoder_input_concat")([image, same_condition])
    features = apply_in_order(layers, x)
    opposite_features = features
    if encoder_prototype != "same":  # The same layers (weights) on the face ⊕ its condition.
        x = keras.layers.Concatenate(name=OPPOSITE_ENCODER_CONCAT)([image, opposite_condition])
        opposite_features = apply_in_order(layers, x)

    # float32 output so the images stay float32 under a mixed-precision policy.
    if residual:
        combiner = keras.layers.Conv2D(channels, 1, activation="tanh", kernel_initializer="zeros",
                                       dtype="float32", name="combiner")
    else:
        combiner = keras.layers.Conv2D(channels, 1, activation="sigmoid", dtype="float32",
                                       name="combiner")
    same = combine_with_layer(combiner, features, same_condition, image, residual, max_change,
                              "same_")
    opposite = combine_with_layer(combiner, opposite_features, opposite_condition, image,
                                  residual, max_change, "opposite_")
    return keras.Model(
        inputs={
            "image": image,
            "same_prototype": same_prototype,
            "opposite_prototype": opposite_prototype,
        },
        outputs={"same": same, "opposite": opposite},
        name=name,
    )


def check_arguments(image_size, channels, encoder_filters, decoder_filters, upsampling,
                    max_change, residual, encoder_prototype):
    """Checks `build_autoencoder`'s arguments (the choice autoencoder's too).

    Returns:
        (encoder_filters, decoder_filters) as tuples.

    Raises:
        ValueError: naming the first argument that is not supported.
    """
    encoder_filters, decoder_filters = tuple(encoder_filters), tuple(decoder_filters)
    if not encoder_filters or len(encoder_filters) != len(decoder_filters):
        raise ValueError(
            "encoder_filters and decoder_filters must be non-empty and equally long, got "
            f"{encoder_filters!r} and {decoder_filters!r}."
        )
    blocks.validate_image_shape(image_size, channels, multiple_of=2 ** len(encoder_filters))
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}.")
    if not 0 < max_change <= 1 or (max_change < 1 and not residual):
        raise ValueError(f"max_change must be in (0, 1], and below 1 only for a residual "
                         f"autoencoder; got {max_change} (residual={residual}).")
    if encoder_prototype not in ENCODER_PROTOTYPES:
        raise ValueError(f"encoder_prototype must be one of {ENCODER_PROTOTYPES}, got "
                         f"{encoder_prototype!r}.")
    return encoder_filters, decoder_filters


def combine_with_layer(combiner, features, prototype, image, residual, max_change, prefix):
    """The `combiner` layer's output image for one prototype: X' (see `build_autoencoder`)."""
    x = keras.layers.Concatenate(name=f"{prefix}combiner_concat")([features, prototype])
    output = combiner(x)
    if residual and max_change < 1:
        output = keras.layers.Rescaling(max_change, dtype="float32", name=f"{prefix}bound")(output)
    if residual:
        output = keras.layers.Add(dtype="float32", name=f"{prefix}residual")([image, output])
        # ReLU(max_value=1) is clip(x, 0, 1) as a built-in layer: no Lambda, no custom layer.
        output = keras.layers.ReLU(max_value=1.0, dtype="float32", name=f"{prefix}clip")(output)
    return output


def encoder_prototype_of(autoencoder):
    """The `encoder_prototype` `autoencoder` (from `build_autoencoder`) was built with."""
    names = {layer.name for layer in autoencoder.layers}
    if SAME_DIFFERENCE in names:
        return "difference"
    return "own" if OPPOSITE_ENCODER_CONCAT in names else "same"


def conditions(autoencoder, same_prototype, prototypes, prefix=""):
    """What `autoencoder`'s passes see beside the face for each of `prototypes` (a dict of
    [B, H, W, C] tensors): the prototypes themselves, or with encoder_prototype "difference"
    each one's difference from `same_prototype` (fresh weightless layers, named
    `<prefix><kind>_condition`)."""
    if encoder_prototype_of(autoencoder) != "difference":
        return dict(prototypes)
    return {kind: keras.layers.Subtract(dtype="float32", name=f"{prefix}{kind}_condition")(
        [prototype, same_prototype]) for kind, prototype in prototypes.items()}


def decode(autoencoder, image, condition):
    """The decoded features of `image` ⊕ `condition` through `autoencoder`'s encoder and
    decoder (its layers and weights, shared)."""
    layer_names = _encoder_decoder_layer_names(
        _count_blocks(autoencoder, "encoder_conv"), _count_blocks(autoencoder, "decoder_conv"))
    x = autoencoder.get_layer("encoder_input_concat")([image, condition])
    return apply_in_order([autoencoder.get_layer(n) for n in layer_names], x)


def is_residual(autoencoder):
    """Whether `autoencoder` (from `build_autoencoder`) adds its output to the input face."""
    return any(layer.name == "same_residual" for layer in autoencoder.layers)


def max_change_of(autoencoder):
    """The `max_change` `autoencoder` (from `build_autoencoder`) was built with."""
    bound = [layer for layer in autoencoder.layers if layer.name == "same_bound"]
    return float(bound[0].scale) if bound else 1.0


def combine(autoencoder, features, prototype, image, prefix):
    """X' from decoded `features`, a prototype and the input `image`, with `autoencoder`'s
    combiner (shared weights) and, when it is residual, fresh skip layers named `prefix`*.

    Lets inference views (`build_perturber`, the export) decode once and combine with any
    prototype, whichever output the autoencoder was built with.
    """
    return combine_with_layer(autoencoder.get_layer("combiner"), features, prototype, image,
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
    `conditions`, to both); the combiner merges the decoded features with
    `combiner_prototype` (at inference the neutral or the opposite prototype). Training the
    autoencoder therefore trains the perturber: no weights are copied.

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

