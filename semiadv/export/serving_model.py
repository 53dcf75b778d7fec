"""The serving perturber: one Keras model holding everything inference needs.

It holds the autoencoder's layers, the auxiliary gender CNN and the three prototypes (as the
frozen weights of Dense layers), is made of built-in Keras layers only and computes in float32,
so `keras.models.load_model` opens its `.keras` file (safe mode) in any Python with Keras 3,
without semiadv installed. `semiadv.export.signatures` wraps it for TF Serving.
"""

from __future__ import annotations

import keras
import numpy as np

from semiadv.models import autoencoders
from semiadv.prototypes import average
from semiadv.prototypes.kinds import KINDS
from semiadv.train import dtype_policies


def image_shape_of(model):
    """(H, W, C) of the images a model takes through its input layer named "image"."""
    return tuple(int(size) for size in model.get_layer("image").batch_shape[1:])


def constant_dense(units, name, use_bias=True):
    """A frozen float32 Dense layer whose weights are constants set after it is built.

    A Dense layer with fixed weights is how a built-in layer multiplies by a constant
    matrix: it selects, permutes and mixes the label columns and holds the prototypes.
    """
    return keras.layers.Dense(units, use_bias=use_bias, trainable=False, dtype="float32",
                              name=name)


def check_edit_strength(edit_strength):
    """Raises ValueError unless `edit_strength` is a finite number > 0."""
    if (isinstance(edit_strength, bool) or not isinstance(edit_strength, (int, float))
            or not np.isfinite(edit_strength) or edit_strength <= 0):
        raise ValueError(f"edit_strength must be a number > 0 (1: the change as trained), got "
                         f"{edit_strength!r}")


def strengthen(image, output, edit_strength, prefix):
    """`output` with its change from `image` scaled: clip(X + s (X' - X), 0, 1).

    The SAN's change X' - X has a direction that other gender classifiers follow but a
    strength set by the trade-off of its training losses; scaling it at export spends
    fidelity budget the training left unused (RESULTS.md, the transfer recipe). A change
    bounded by max_change is then bounded by s x max_change. Built-in layers only; s = 1
    adds no layer, so such an export is the network as trained.
    """
    check_edit_strength(edit_strength)
    if edit_strength == 1:
        return output
    change = keras.layers.Subtract(name=f"{prefix}change")([output, image])
    scaled = keras.layers.Rescaling(float(edit_strength), name=f"{prefix}scaled_change")(change)
    stronger = keras.layers.Add(name=f"{prefix}strengthened")([image, scaled])
    return keras.layers.ReLU(max_value=1.0, name=f"{prefix}clipped")(stronger)


def label_layers(male, logits):
    """Label weights [B, 2] = [1 - label, label], male score [B, 1] and label [B, 1].

    The label is the caller's `male` clipped to [0, 1] where it is given (>= 0), else the
    hard label of the gender CNN: male when its probability of male is >= 0.5. Built-in
    layers only; every step is exact for 0/1 values (one-hot indicators, products with 0 or
    1, sums with 0), so a hard or given label reaches the prototypes unchanged. Returns also
    the layers holding constants with their weights, to be set once built.
    """
    probabilities = keras.layers.Softmax(dtype="float32", name="male_probabilities")(logits)
    pick_male = constant_dense(1, "male_score_column", use_bias=False)
    score = pick_male(probabilities)
    # One-hot of the bucket: [1, 0] below the boundary, [0, 1] at or above it.
    hard = keras.layers.Discretization(bin_boundaries=[0.5], output_mode="one_hot",
                                       dtype="float32", name="hard_label")(score)
    known = keras.layers.Discretization(bin_boundaries=[0.0], output_mode="one_hot",
                                        dtype="float32", name="label_given")(male)
    clipped = keras.layers.ReLU(max_value=1.0, dtype="float32", name="male_clip")(male)
    given_weights = constant_dense(2, "given_label_weights")   # c -> [1 - c, c]
    given = given_weights(clipped)
    spread_known = constant_dense(2, "known_mask", use_bias=False)      # [u, k] -> [k, k]
    spread_unknown = constant_dense(2, "unknown_mask", use_bias=False)  # [u, k] -> [u, u]
    weights = keras.layers.Add(dtype="float32", name="label_weights")([
        keras.layers.Multiply(dtype="float32", name="given_if_known")(
            [spread_known(known), given]),
        keras.layers.Multiply(dtype="float32", name="hard_if_unknown")(
            [spread_unknown(known), hard]),
    ])
    pick_label = constant_dense(1, "male_label_column", use_bias=False)
    label = pick_label(weights)
    column = np.array([[0.0], [1.0]], np.float32)  # [u, v] -> v
    constants = [
        (pick_male, [column]),
        (pick_label, [column]),
        (given_weights, [np.array([[-1.0, 1.0]], np.float32), np.array([1.0, 0.0], np.float32)]),
        (spread_known, [np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)]),
        (spread_unknown, [np.array([[1.0, 1.0], [0.0, 0.0]], np.float32)]),
    ]
    return weights, score, label, constants


def prototype_layers(weights, image_shape, prototypes):
    """(same, neutral, opposite) prototypes [B, H, W, C] mixed by label weights [1 - y, y].

    The prototypes are the kernels of frozen Dense layers without activation:
    P_SM = (1 - y) P_female + y P_male, P_OP = y P_female + (1 - y) P_male (the weights
    swapped), P_NT = 0 * weights + P_neutral (a bias). Also returns the constant layers.
    """
    size = int(np.prod(image_shape))
    swap = constant_dense(2, "opposite_label_weights", use_bias=False)
    gendered = constant_dense(size, "male_female_prototypes", use_bias=False)
    neutral = constant_dense(size, "neutral_prototype_constant")
    flat = {"same": gendered(weights), "opposite": gendered(swap(weights)),
            "neutral": neutral(weights)}
    mixed = {kind: keras.layers.Reshape(image_shape, dtype="float32",
                                        name=f"{kind}_prototype")(flat[kind])
             for kind in KINDS}
    female, male = (np.asarray(p, np.float32).reshape(1, size)
                    for p in (prototypes.female, prototypes.male))
    constants = [
        (swap, [np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)]),
        (gendered, [np.concatenate([female, male])]),
        (neutral, [np.zeros((2, size), np.float32),
                   np.asarray(prototypes.neutral, np.float32).reshape(size)]),
    ]
    return mixed, constants


def float32_copy(model):
    """`model`, or a copy with the same weights, computing every layer in float32.

    A network trained under mixed_bfloat16 keeps that per-layer policy in its `.keras` file;
    in bfloat16 the result depends on how a runtime fuses the ops (TF Serving's optimised
    graph and Keras's eager calls round at different places), so the export computes in
    float32, where every runtime gives the same answer (the weights are float32 anyway).
    """
    return dtype_policies.with_dtype_policy(model, "float32")


def _apply_later_links(later_links, outputs, mixed, same_encoder, float32):
    """The outputs of a sequential SAN's links 2..K applied in turn to link 1's `outputs`.

    Each link is its inference view (`autoencoders.build_perturber`, sharing its weights)
    nested as one layer named `link<k>_perturber`, called once per kind on the previous link's
    output of that kind, with the same prototypes (mixed by the one label of the original
    face: see `semiadv.train.flow`). Nesting keeps the links' layers, all named alike, apart.
    """
    for index, link in enumerate(later_links, start=2):
        if float32:
            link = float32_copy(link)
        condition = autoencoders.conditions(link, mixed["same"], mixed, f"link{index}_")
        perturber = autoencoders.build_perturber(link, name=f"link{index}_perturber")
        outputs = {kind: perturber({
            "image": outputs[kind],
            # As in training: the paper's encoder sees the same-gender prototype for every
            # output, the others each output's own condition.
            "encoder_prototype": condition["same" if same_encoder else kind],
            "combiner_prototype": condition[kind]}) for kind in KINDS}
    return outputs


def build_serving_perturber(autoencoder, gender_classifier, prototypes, name="serving_perturber",
                            float32=True, later_links=(), edit_strength=1.0):
    """Builds the one model that serves every mode of the SAN, from built-in layers only.

    Args:
        autoencoder: A model returned by `autoencoders.build_autoencoder` (trained): the SAN,
            or link 1 of a sequential SAN.
        gender_classifier: The auxiliary gender CNN
            (`semiadv.models.gender_classifiers.build_gender_classifier`),
            images [B, H, W, C] -> logits [B, 2], class 1 = male.
        prototypes: A `semiadv.prototypes.average.Prototypes` of the autoencoder's image shape.
        name: Model name.
        float32: True (the default) to compute every layer in float32 (see `float32_copy`).
            False keeps the precision the networks were trained in: a mixed_bfloat16 export
            serves faster on CPUs with bfloat16 (BENCHMARKS.md §6), but its SavedModel and
            .keras file then agree only to bfloat16 precision.
        later_links: the trained autoencoders of links 2..K of a sequential SAN
            (`semiadv.train.flow`), applied in turn to link 1's outputs, each output kind
            to the previous link's output of that kind, all with the prototypes of the
            original face's label. Empty (the default): the SAN alone, as before chains.
        edit_strength: the scale s of every output's change, X + s (X' - X) clipped to
            [0, 1] (`strengthen`); 1 (the default) serves the change as trained.

    Returns:
        A frozen float32 `keras.Model` taking `{"image": [B, H, W, C] float32 in [0, 1],
        "male": [B] float32}` (`male` in [0, 1], or negative to let the gender CNN decide
        with its hard label: male when male_score >= 0.5) and returning `{"same", "neutral",
        "opposite"}` perturbed images [B, H, W, C] float32, `"male_score"` [B] (the CNN's
        probability of male) and `"male_label"` [B] (the label the prototypes were mixed
        with). Whatever dtype policy the networks were trained under, every layer computes
        in float32 (see `float32_copy`).

    Raises:
        ValueError: If the prototypes or the gender CNN do not fit the autoencoder's shape,
            or edit_strength is not > 0.
    """
    check_edit_strength(edit_strength)
    image_shape = image_shape_of(autoencoder)
    average.check_shape(prototypes, image_shape[0], image_shape[2])
    classifier_shape = tuple(gender_classifier.inputs[0].shape[1:])
    if classifier_shape != image_shape:
        raise ValueError(f"the gender classifier takes images of shape {classifier_shape}, "
                         f"the autoencoder {image_shape}")
    for index, link in enumerate(later_links, start=2):
        if image_shape_of(link) != image_shape:
            raise ValueError(f"link {index} takes images of shape {image_shape_of(link)}, "
                             f"link 1 {image_shape}")
    # The layers made here (the copies' and autoencoders.combine's too) take the global policy.
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        if float32:
            autoencoder = float32_copy(autoencoder)
            gender_classifier = float32_copy(gender_classifier)
        image = keras.Input(shape=image_shape, name="image")
        male = keras.Input(shape=(), name="male")
        male_column = keras.layers.Reshape((1,), name="male_column")(male)
        weights, score, label, label_constants = label_layers(
            male_column, gender_classifier(image))
        mixed, prototype_constants = prototype_layers(weights, image_shape, prototypes)
        condition = autoencoders.conditions(autoencoder, mixed["same"], mixed)
        if autoencoders.encoder_prototype_of(autoencoder) == "same":
            # The paper's encoder: one decoded pass, from the same-gender prototype, serves
            # all three outputs instead of running the encoder three times.
            features = dict.fromkeys(
                KINDS, autoencoders.decode(autoencoder, image, condition["same"]))
        else:  # Each output's encoder saw its own condition in training (the neutral one too).
            features = {kind: autoencoders.decode(autoencoder, image, condition[kind])
                        for kind in KINDS}
        outputs = {kind: autoencoders.combine(autoencoder, features[kind], condition[kind], image,
                                              f"{kind}_")
                   for kind in KINDS}
        if later_links:
            outputs = _apply_later_links(
                later_links, outputs, mixed,
                autoencoders.encoder_prototype_of(autoencoder) == "same", float32)
        outputs = {kind: strengthen(image, output, edit_strength, f"{kind}_")
                   for kind, output in outputs.items()}
        outputs.update(
            male_score=keras.layers.Reshape((), name="male_score")(score),
            male_label=keras.layers.Reshape((), name="male_label")(label))
        model = keras.Model(inputs={"image": image, "male": male}, outputs=outputs, name=name)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    for layer, values in (*label_constants, *prototype_constants):
        layer.set_weights(values)
    model.trainable = False
    return model
