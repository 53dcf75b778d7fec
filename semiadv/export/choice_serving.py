"""The serving perturber of a choice-conditioned SAN (`TrainConfig.hide_attributes`).

Like `serving_model.build_serving_perturber` (built-in layers only, float32, the gender CNN
and the prototypes inside), around a choice autoencoder
(`semiadv.models.choice_autoencoder`): it takes the choice as an input `hide` [B, 3] and
returns the face with it applied. `semiadv.export.choice_signatures` wraps it for TF Serving.
"""

from __future__ import annotations

import keras
import numpy as np

from semiadv.export import serving_model
from semiadv.models import choice_autoencoder
from semiadv.prototypes import average


def build_choice_serving_perturber(autoencoder, gender_classifier, prototypes,
                                   name="choice_serving_perturber", float32=True,
                                   edit_strength=1.0):
    """Builds the one model that serves every choice of a choice-conditioned SAN.

    Args:
        autoencoder: A trained `choice_autoencoder.build_choice_autoencoder` model.
        gender_classifier: The auxiliary gender CNN: images -> logits [B, 2], class 1 male.
        prototypes: `semiadv.prototypes.average.Prototypes` of the autoencoder's image shape.
        name: Model name.
        float32: Compute in float32 (see `serving_model.float32_copy`).
        edit_strength: the scale of both outputs' change (`serving_model.strengthen`).

    Returns:
        A frozen float32 `keras.Model` taking `{"image": [B, H, W, C] in [0, 1], "male": [B]
        (in [0, 1], or negative: read by the gender CNN, hard label), "hide": [B, 3] (1 hide,
        0 keep; gender, age_group, race)}` and returning `{"perturbed": the face with that
        choice [B, H, W, C], "neutral": the same choice with gender hidden by the neutral
        prototype [B, H, W, C], "male_score" [B], "male_label" [B]}`. Where gender is hidden
        the autoencoder reads the opposite prototype, where kept the same-gender one.

    Raises:
        ValueError: If the autoencoder is not a choice autoencoder, or the shapes differ,
            or edit_strength is not > 0.
    """
    serving_model.check_edit_strength(edit_strength)
    if not choice_autoencoder.is_choice_autoencoder(autoencoder):
        raise ValueError("build_choice_serving_perturber needs a choice autoencoder (one with "
                         "a 'hide' input): this SAN was trained without hide_attributes")
    image_shape = serving_model.image_shape_of(autoencoder)
    average.check_shape(prototypes, image_shape[0], image_shape[2])
    classifier_shape = tuple(gender_classifier.inputs[0].shape[1:])
    if classifier_shape != image_shape:
        raise ValueError(f"the gender classifier takes images of shape {classifier_shape}, "
                         f"the autoencoder {image_shape}")
    choices = choice_autoencoder.CHOICES
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        if float32:
            autoencoder = serving_model.float32_copy(autoencoder)
            gender_classifier = serving_model.float32_copy(gender_classifier)
        image = keras.Input(shape=image_shape, name="image")
        male = keras.Input(shape=(), name="male")
        hide = keras.Input(shape=(choices,), name="hide")
        male_column = keras.layers.Reshape((1,), name="male_column")(male)
        weights, score, label, label_constants = serving_model.label_layers(
            male_column, gender_classifier(image))
        mixed, prototype_constants = serving_model.prototype_layers(weights, image_shape,
                                                                     prototypes)
        # The gender column of `hide`, [B, 1, 1, 1], mixes P_SM (keep) and P_OP (hide), as
        # training does (`choice_task.chosen_prototype`).
        pick_gender = serving_model.constant_dense(1, "hide_gender_column", use_bias=False)
        hide_gender = keras.layers.Reshape((1, 1, 1), name="hide_gender")(pick_gender(hide))
        # The neutral output hides gender whatever `hide` says: its gender column set to 1.
        force_gender = serving_model.constant_dense(choices, "hide_gender_forced")
        neutral_hide = force_gender(hide)

        change = keras.layers.Subtract(name="opposite_prototype_change")(
            [mixed["opposite"], mixed["same"]])
        weighted = keras.layers.Multiply(name="opposite_prototype_weighted")([change, hide_gender])
        chosen = keras.layers.Add(name="chosen_prototype")([mixed["same"], weighted])
        perturbed = autoencoder({"image": image, "same_prototype": mixed["same"],
                                 "prototype": chosen, "hide": hide})["perturbed"]
        # Gender hidden (column forced to 1) with the neutral prototype: the chosen prototype
        # of a hidden gender, P_SM + 1 x (P_NT - P_SM), is P_NT itself.
        neutral = autoencoder({"image": image, "same_prototype": mixed["same"],
                               "prototype": mixed["neutral"], "hide": neutral_hide})["perturbed"]
        perturbed = serving_model.strengthen(image, perturbed, edit_strength, "perturbed_")
        neutral = serving_model.strengthen(image, neutral, edit_strength, "neutral_")
        outputs = {
            "perturbed": keras.layers.Identity(name="perturbed")(perturbed),
            "neutral": keras.layers.Identity(name="neutral")(neutral),
            "male_score": keras.layers.Reshape((), name="male_score")(score),
            "male_label": keras.layers.Reshape((), name="male_label")(label),
        }
        model = keras.Model(inputs={"image": image, "male": male, "hide": hide},
                            outputs=outputs, name=name)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    gender_column = np.zeros((choices, 1), np.float32)
    gender_column[0, 0] = 1.0
    keep_others = np.diag([0.0] + [1.0] * (choices - 1)).astype(np.float32)
    gender_on = np.array([1.0] + [0.0] * (choices - 1), np.float32)
    for layer, values in (*label_constants, *prototype_constants,
                          (pick_gender, [gender_column]),
                          (force_gender, [keep_others, gender_on])):
        layer.set_weights(values)
    model.trainable = False
    return model
