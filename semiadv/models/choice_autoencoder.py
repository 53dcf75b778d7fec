"""The choice-conditioned SAN autoencoder (PrivacyNet, Mirjalili et al., IEEE TIP 2020).

The SAN autoencoder of `autoencoders.build_autoencoder`, told per face which attributes to
hide: a `hide` vector [B, 3] (gender, age_group, race: `config.HIDEABLE_ATTRIBUTES`; 1 hide,
0 keep) is broadcast to three constant planes the encoder and the combiner read beside the
face and its gender condition. One pass gives one output, the face with that choice applied.

Only gender has a prototype: the face's own gender's when gender is kept, the other
gender's when hidden (as the gender SAN's X'_SM and X'_OP). Age group and race get none: a
hidden age or race has no one target value (chance for the auxiliary classifier is the goal,
`semiadv.train.choice_task`), and a kept one is the face's own, which the face already shows.
Their planes and the loss alone steer them.

Built-in layers only (the planes are a `RepeatVector` and a `Reshape`, no Lambda), so a
serving model holding it loads with Keras alone.
"""

import keras

from semiadv.config import HIDEABLE_ATTRIBUTES
from semiadv.models import autoencoders, blocks

CHOICES = len(HIDEABLE_ATTRIBUTES)


def choice_planes(hide, image_size, name):
    """`hide` [B, 3] as constant planes [B, H, W, 3] (built-in layers)."""
    repeated = keras.layers.RepeatVector(image_size * image_size, name=f"{name}_repeat")(hide)
    return keras.layers.Reshape((image_size, image_size, CHOICES), name=name)(repeated)


def build_choice_autoencoder(
    image_size,
    channels,
    encoder_filters=(8, 12),
    decoder_filters=(256, 128),
    residual=False,
    upsampling="nearest",
    max_change=1.0,
    encoder_prototype="same",
    name="choice_autoencoder",
):
    """Builds the choice-conditioned autoencoder.

    Args: as `autoencoders.build_autoencoder`, except `encoder_prototype`: "difference" makes
        the gender condition the chosen prototype minus the same-gender one (zero when gender
        is kept, as the gender SAN's X'_SM); "same" and "own" both give the chosen prototype
        itself (one pass per output, so there is nothing to share).

    Returns:
        A `keras.Model` taking `{"image", "same_prototype", "prototype"}` ([B, H, W, C] in
        [0, 1]; `prototype` is the same-gender one where gender is kept, the other gender's
        where hidden) and `"hide"` [B, 3] (1 hide, 0 keep; gender, age_group, race) and
        returning `{"perturbed": X'}` [B, H, W, C] float32.
    """
    encoder_filters, decoder_filters = autoencoders.check_arguments(
        image_size, channels, encoder_filters, decoder_filters, upsampling, max_change,
        residual, encoder_prototype)

    image = blocks.image_input(image_size, channels, "image")
    same_prototype = blocks.image_input(image_size, channels, "same_prototype")
    prototype = blocks.image_input(image_size, channels, "prototype")
    hide = keras.Input(shape=(CHOICES,), name="hide")

    condition = prototype
    if encoder_prototype == "difference":
        condition = keras.layers.Subtract(name="prototype_difference")([prototype, same_prototype])
    planes = choice_planes(hide, image_size, "choice_planes")
    conditioning = keras.layers.Concatenate(name="conditioning")([condition, planes])
    layers = autoencoders.make_encoder_decoder_layers(encoder_filters, decoder_filters,
                                                       upsampling)
    x = keras.layers.Concatenate(name="encoder_input_concat")([image, conditioning])
    features = autoencoders.apply_in_order(layers, x)
    if residual:
        combiner = keras.layers.Conv2D(channels, 1, activation="tanh", kernel_initializer="zeros",
                                       dtype="float32", name="combiner")
    else:
        combiner = keras.layers.Conv2D(channels, 1, activation="sigmoid", dtype="float32",
                                       name="combiner")
    perturbed = autoencoders.combine_with_layer(combiner, features, conditioning, image, residual,
                                      max_change, "")
    return keras.Model(
        inputs={"image": image, "same_prototype": same_prototype, "prototype": prototype,
                "hide": hide},
        outputs={"perturbed": perturbed}, name=name)


def is_choice_autoencoder(model):
    """Whether `model` was built by `build_choice_autoencoder` (it has a `hide` input)."""
    return any(layer.name == "hide" for layer in model.layers)
