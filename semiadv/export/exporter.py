"""Exports a trained SAN for TF Serving and for Keras.

One Keras functional model, the *serving perturber*, holds everything inference needs: the
autoencoder's layers, the auxiliary gender CNN and the three prototypes (as the frozen
weights of Dense layers). It is made of built-in Keras layers only and computes in float32.
It is saved twice:

- as a SavedModel with named signatures, for TF Serving and `tf.saved_model.load`;
- as `perturber.keras` inside the same version dir, for `keras.models.load_model(path)`
  (safe mode) in any Python with Keras 3, without semiadv installed. TF Serving only reads
  `saved_model.pb`, `variables/` and `assets*/` from a version dir, so the extra file is
  ignored there, and it travels (and is published atomically) with the SavedModel it
  matches.

Layout under the TF Serving base path::

    export_base/models.config            # model_config_list naming every model below
    export_base/<name>/<version>/        # integer versions, never overwritten
        saved_model.pb, variables/, perturber.keras

Signatures (serving_default = opposite):

- `same`, `neutral`, `opposite`: `image` float32 [N, H, W, C] in [0, 1] ->
  `perturbed` float32 [N, H, W, C], `male_score` float32 [N]. The gender comes from the
  auxiliary CNN; the prototypes follow its *hard* label (male_score >= 0.5), like training,
  where the autoencoder only ever saw pure male or female prototypes. N may be 0. Pixels
  must be finite and in [0, 1] (up to `PIXEL_TOLERANCE`, then clipped): anything else, like
  NaN or 0..255 values, fails with InvalidArgumentError instead of giving a wrong face, so
  the outputs are always finite and in [0, 1].
- `same_labelled`, `neutral_labelled`, `opposite_labelled`: one dict {`image` [N, H, W, C],
  `male` [N]} float32; `male` in [0, 1] is used as given (soft labels mix the prototypes),
  a negative `male` means "infer it" as above; a NaN `male` is refused.
- `same_encoded`, `neutral_encoded`, `opposite_encoded`: `image_bytes` tf.string [N] (JPEG,
  PNG, BMP or GIF of any size) -> `perturbed_png_bytes` tf.string [N], `male_score` [N]. For REST
  clients sending `{"b64": ...}`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from semiadv.data import datasets as data
from semiadv.models import networks
from semiadv.train import tasks
from semiadv.prototypes import prototypes as prototypes_lib
from semiadv.prototypes.kinds import KINDS

# The first endpoint added becomes serving_default: hiding gender is the point of the SAN.
_ENDPOINT_ORDER = ("opposite", "same", "neutral")
KERAS_FILENAME = "perturber.keras"
MODELS_CONFIG = "models.config"
# TF Serving only loads version dirs whose names parse as integers; this prefix never does.
_TEMP_PREFIX = ".incomplete-"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# ---------------------------------------------------------------------------------------------
# The serving model: built-in Keras layers only, so `keras.models.load_model` opens
# perturber.keras in a process that never imported semiadv.
# ---------------------------------------------------------------------------------------------


def _image_shape(autoencoder):
    return tuple(int(size) for size in autoencoder.get_layer("image").batch_shape[1:])


def _constant_dense(units, name, use_bias=True):
    """A frozen float32 Dense layer whose weights are constants set after it is built.

    A Dense layer with fixed weights is how a built-in layer multiplies by a constant
    matrix: it selects, permutes and mixes the label columns and holds the prototypes.
    """
    return keras.layers.Dense(units, use_bias=use_bias, trainable=False, dtype="float32",
                              name=name)


def _label_layers(male, logits):
    """Label weights [B, 2] = [1 - label, label], male score [B, 1] and label [B, 1].

    The label is the caller's `male` clipped to [0, 1] where it is given (>= 0), else the
    hard label of the gender CNN: male when its probability of male is >= 0.5. Built-in
    layers only; every step is exact for 0/1 values (one-hot indicators, products with 0 or
    1, sums with 0), so a hard or given label reaches the prototypes unchanged. Returns also
    the layers holding constants with their weights, to be set once built.
    """
    probabilities = keras.layers.Softmax(dtype="float32", name="male_probabilities")(logits)
    pick_male = _constant_dense(1, "male_score_column", use_bias=False)
    score = pick_male(probabilities)
    # One-hot of the bucket: [1, 0] below the boundary, [0, 1] at or above it.
    hard = keras.layers.Discretization(bin_boundaries=[0.5], output_mode="one_hot",
                                       dtype="float32", name="hard_label")(score)
    known = keras.layers.Discretization(bin_boundaries=[0.0], output_mode="one_hot",
                                        dtype="float32", name="label_given")(male)
    clipped = keras.layers.ReLU(max_value=1.0, dtype="float32", name="male_clip")(male)
    given_weights = _constant_dense(2, "given_label_weights")   # c -> [1 - c, c]
    given = given_weights(clipped)
    spread_known = _constant_dense(2, "known_mask", use_bias=False)      # [u, k] -> [k, k]
    spread_unknown = _constant_dense(2, "unknown_mask", use_bias=False)  # [u, k] -> [u, u]
    weights = keras.layers.Add(dtype="float32", name="label_weights")([
        keras.layers.Multiply(dtype="float32", name="given_if_known")(
            [spread_known(known), given]),
        keras.layers.Multiply(dtype="float32", name="hard_if_unknown")(
            [spread_unknown(known), hard]),
    ])
    pick_label = _constant_dense(1, "male_label_column", use_bias=False)
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


def _prototype_layers(weights, image_shape, prototypes):
    """(same, neutral, opposite) prototypes [B, H, W, C] mixed by label weights [1 - y, y].

    The prototypes are the kernels of frozen Dense layers without activation:
    P_SM = (1 - y) P_female + y P_male, P_OP = y P_female + (1 - y) P_male (the weights
    swapped), P_NT = 0 * weights + P_neutral (a bias). Also returns the constant layers.
    """
    size = int(np.prod(image_shape))
    swap = _constant_dense(2, "opposite_label_weights", use_bias=False)
    gendered = _constant_dense(size, "male_female_prototypes", use_bias=False)
    neutral = _constant_dense(size, "neutral_prototype_constant")
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
    return tasks.with_dtype_policy(model, "float32")


def build_serving_perturber(autoencoder, gender_classifier, prototypes, name="serving_perturber",
                            float32=True):
    """Builds the one model that serves every mode of the SAN, from built-in layers only.

    Args:
        autoencoder: A model returned by `networks.build_autoencoder` (trained).
        gender_classifier: The auxiliary gender CNN (`networks.build_gender_classifier`),
            images [B, H, W, C] -> logits [B, 2], class 1 = male.
        prototypes: A `semiadv.prototypes.prototypes.Prototypes` of the autoencoder's image shape.
        name: Model name.
        float32: True (the default) to compute every layer in float32 (see `float32_copy`).
            False keeps the precision the networks were trained in: a mixed_bfloat16 export
            serves 1.2-1.4x faster at batches of 32-256 on CPUs with bfloat16 (BENCHMARKS.md
            §6), but its SavedModel and .keras file then agree only to bfloat16 precision.

    Returns:
        A frozen float32 `keras.Model` taking `{"image": [B, H, W, C] float32 in [0, 1],
        "male": [B] float32}` (`male` in [0, 1], or negative to let the gender CNN decide
        with its hard label: male when male_score >= 0.5) and returning `{"same", "neutral",
        "opposite"}` perturbed images [B, H, W, C] float32, `"male_score"` [B] (the CNN's
        probability of male) and `"male_label"` [B] (the label the prototypes were mixed
        with). Whatever dtype policy the networks were trained under, every layer computes
        in float32 (see `float32_copy`).

    Raises:
        ValueError: If the prototypes or the gender CNN do not fit the autoencoder's shape.
    """
    image_shape = _image_shape(autoencoder)
    prototypes_lib.check_shape(prototypes, image_shape[0], image_shape[2])
    classifier_shape = tuple(gender_classifier.inputs[0].shape[1:])
    if classifier_shape != image_shape:
        raise ValueError(f"the gender classifier takes images of shape {classifier_shape}, "
                         f"the autoencoder {image_shape}")
    # The layers made here (the copies' and networks.combine's too) take the global policy.
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        if float32:
            autoencoder = float32_copy(autoencoder)
            gender_classifier = float32_copy(gender_classifier)
        image = keras.Input(shape=image_shape, name="image")
        male = keras.Input(shape=(), name="male")
        male_column = keras.layers.Reshape((1,), name="male_column")(male)
        weights, score, label, label_constants = _label_layers(
            male_column, gender_classifier(image))
        mixed, prototype_constants = _prototype_layers(weights, image_shape, prototypes)
        condition = networks.conditions(autoencoder, mixed["same"], mixed)
        if networks.encoder_prototype_of(autoencoder) == "same":
            # The paper's encoder: one decoded pass, from the same-gender prototype, serves
            # all three outputs instead of running the encoder three times.
            features = dict.fromkeys(KINDS, networks.decode(autoencoder, image, condition["same"]))
        else:  # Each output's encoder saw its own condition in training (the neutral one too).
            features = {kind: networks.decode(autoencoder, image, condition[kind])
                        for kind in KINDS}
        outputs = {kind: networks.combine(autoencoder, features[kind], condition[kind], image,
                                          f"{kind}_")
                   for kind in KINDS}
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


def image_shape_of(model):
    """(H, W, C) of a serving perturber's images."""
    return tuple(int(size) for size in model.get_layer("image").batch_shape[1:])


# ---------------------------------------------------------------------------------------------
# Signatures.
# ---------------------------------------------------------------------------------------------


def _image_spec(shape):
    return tf.TensorSpec((None,) + tuple(shape), tf.float32, name="image")


# Pixel values this far outside [0, 1] are float noise (resizing, rounding) and are clipped;
# beyond it the caller sent something else (e.g. 0..255 floats), which is refused rather than
# clipped into a silently wrong (white) face.
PIXEL_TOLERANCE = 1.0 / 255.0


def _checked_image(image, image_shape):
    """`image`, failing with InvalidArgumentError unless it is [N, H, W, C] of valid pixels.

    A loaded signature checks dtypes but not shapes, and oneDNN's convolution aborts the
    whole process on a wrong rank, so shapes are checked at run time before any layer. The
    raw op is used because `tf.ensure_shape` is dropped when the static shape already fits.
    Values must be finite and within PIXEL_TOLERANCE of [0, 1]; they are then clipped to
    [0, 1], so the outputs are finite and in [0, 1] too.
    """
    image = tf.raw_ops.EnsureShape(input=image, shape=tf.TensorShape((None,) + tuple(image_shape)))
    checks = [
        tf.debugging.assert_all_finite(image, "'image' has NaN or infinite values"),
        tf.debugging.assert_greater_equal(
            image, -PIXEL_TOLERANCE, message="image values must be in [0, 1] (got a value < 0)"),
        tf.debugging.assert_less_equal(
            image, 1.0 + PIXEL_TOLERANCE,
            message="image values must be in [0, 1] (got a value > 1; 0..255 pixels must be "
                    "divided by 255)"),
    ]
    with tf.control_dependencies(checks):
        return tf.clip_by_value(image, 0.0, 1.0)


def _run_model(model, image, male):
    """The serving model's outputs for a batch, which may be empty.

    oneDNN's convolutions fail on an empty batch with a misleading "input depth" error, so
    an empty batch runs one blank image instead and its outputs are cut back to none.
    """
    count = tf.shape(image)[0]
    blank_image = tf.zeros(tf.concat([[1], tf.shape(image)[1:]], axis=0), image.dtype)
    image = tf.cond(count > 0, lambda: image, lambda: blank_image)
    male = tf.cond(count > 0, lambda: male, lambda: -tf.ones([1], tf.float32))
    outputs = model({"image": image, "male": male}, training=False)
    return {name: value[:count] for name, value in outputs.items()}


def _checked_male(male, image):
    """`male`, failing with InvalidArgumentError unless it is [N] for N images."""
    male = tf.raw_ops.EnsureShape(input=male, shape=tf.TensorShape([None]))
    checks = [
        tf.debugging.assert_equal(tf.shape(male)[0], tf.shape(image)[0],
                                  message="'male' must have one label per image"),
        # NaN is neither negative ("infer") nor in [0, 1]: it would make the whole face NaN.
        tf.debugging.assert_all_finite(male, "'male' has NaN or infinite values"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(male)


def _unknown_male(image):
    # Negative = "let the gender CNN decide" (see _label_layers).
    return -tf.ones(tf.shape(image)[:1], tf.float32)


def _inferred_endpoint(model, kind):
    image_shape = image_shape_of(model)

    def serve(image):
        image = _checked_image(image, image_shape)
        outputs = _run_model(model, image, _unknown_male(image))
        return {"perturbed": outputs[kind], "male_score": outputs["male_score"]}
    return serve


def _labelled_endpoint(model, kind):
    image_shape = image_shape_of(model)

    def serve(inputs):
        image = _checked_image(inputs["image"], image_shape)
        male = _checked_male(inputs["male"], image)
        outputs = _run_model(model, image, male)
        return {"perturbed": outputs[kind], "male_score": outputs["male_score"]}
    return serve


def _decode_one(image_shape):
    height, width, channels = image_shape

    def decode(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        # Same resize (antialiased, rounded to uint8) as the training input pipeline.
        image = data.resize_uint8(image, height, channels)
        image = tf.ensure_shape(image, (height, width, channels))
        return tf.cast(image, tf.float32) / 255.0
    return decode


def _encode_png(image):
    return tf.io.encode_png(tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8))


def _encoded_endpoint(model, kind, image_shape):
    def serve(image_bytes):
        image_bytes = tf.raw_ops.EnsureShape(input=image_bytes, shape=tf.TensorShape([None]))
        images = tf.map_fn(_decode_one(image_shape), image_bytes,
                           fn_output_signature=tf.TensorSpec(image_shape, tf.float32))
        outputs = _run_model(model, images, _unknown_male(images))
        png = tf.map_fn(_encode_png, outputs[kind],
                        fn_output_signature=tf.TensorSpec((), tf.string))
        # TF Serving's REST API base64-encodes (as {"b64": ...}) only outputs whose name ends
        # in "_bytes"; any other string output would go out as raw, invalid UTF-8.
        return {"perturbed_png_bytes": png, "male_score": outputs["male_score"]}
    return serve


def build_export_archive(model):
    """A `keras.export.ExportArchive` with the nine signatures of a serving perturber."""
    image_shape = image_shape_of(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for kind in _ENDPOINT_ORDER:
        archive.add_endpoint(kind, _inferred_endpoint(model, kind),
                             input_signature=[_image_spec(image_shape)])
    for kind in _ENDPOINT_ORDER:
        archive.add_endpoint(
            f"{kind}_labelled", _labelled_endpoint(model, kind),
            input_signature=[{"image": _image_spec(image_shape),
                              "male": tf.TensorSpec((None,), tf.float32, name="male")}])
    for kind in _ENDPOINT_ORDER:
        archive.add_endpoint(
            f"{kind}_encoded", _encoded_endpoint(model, kind, image_shape),
            input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    return archive


def signature_names():
    """Every signature an export has, besides serving_default (= opposite)."""
    return [f"{kind}{suffix}" for suffix in ("", "_labelled", "_encoded") for kind in KINDS]


# ---------------------------------------------------------------------------------------------
# Versioned, atomic export.
# ---------------------------------------------------------------------------------------------


def _check_name(name):
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or name.isdigit():
        raise ValueError(f"export name must be letters, digits, '_', '.', '-' (not starting "
                         f"with '.' and not all digits), got {name!r}")


def existing_versions(model_dir):
    """The integer versions present in `export_base/<name>/`, sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(child.name) for child in model_dir.iterdir()
                  if child.is_dir() and child.name.isdigit())


def _choose_version(model_dir, version):
    versions = existing_versions(model_dir)
    if version is None:
        return (versions[-1] + 1) if versions else 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    if int(version) in versions or (Path(model_dir) / str(version)).exists():
        raise FileExistsError(f"{Path(model_dir) / str(version)} already exists: versions are "
                              f"never overwritten (existing: {versions})")
    return int(version)


def _write_version(model, temp_dir):
    build_export_archive(model).write_out(str(temp_dir), verbose=False)
    model.save(temp_dir / KERAS_FILENAME)


def export_san(autoencoder, gender_classifier, prototypes, export_base, name, version=None,
               float32=True):
    """Exports a trained SAN as `export_base/<name>/<version>/` and updates models.config.

    The version is written to a hidden temporary dir beside the versions (TF Serving ignores
    names that are not integers) and renamed into place, so a server polling the base path
    never loads a half-written model, and a failed export leaves no version behind.

    Args:
        autoencoder: The trained autoencoder (`networks.build_autoencoder`).
        gender_classifier: The auxiliary gender CNN.
        prototypes: `semiadv.prototypes.prototypes.Prototypes` of the autoencoder's image shape.
        export_base: TF Serving model base path (e.g. `exports/`).
        name: Model name: letters, digits, '_', '.', '-'.
        version: Integer >= 1, or None for one more than the highest existing version.
        float32: Compute in float32 whatever the training precision (the default; see
            `build_serving_perturber`).

    Returns:
        The version dir (absolute). It holds the SavedModel and `perturber.keras`.

    Raises:
        FileExistsError: If the version already exists.
        ValueError: For a bad name, version or mismatched shapes.
    """
    _check_name(name)
    export_base = Path(export_base).resolve()
    model_dir = export_base / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = _choose_version(model_dir, version)
    model = build_serving_perturber(autoencoder, gender_classifier, prototypes, float32=float32)

    temp_dir = model_dir / f"{_TEMP_PREFIX}{version}-{uuid.uuid4().hex}"
    final_dir = model_dir / str(version)
    try:
        temp_dir.mkdir()
        _write_version(model, temp_dir)
        if final_dir.exists():  # Another export took the version meanwhile.
            raise FileExistsError(f"{final_dir} appeared during the export; not overwritten")
        os.rename(temp_dir, final_dir)
    finally:
        if temp_dir.exists():
            shutil.rmtree(temp_dir, ignore_errors=True)
    write_models_config(export_base)
    logging.info("exported %s", final_dir)
    return final_dir


# ---------------------------------------------------------------------------------------------
# TF Serving model config.
# ---------------------------------------------------------------------------------------------


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def models_config_text(export_base):
    """The TF Serving `model_config_list` of every model (with a version) under export_base."""
    export_base = Path(export_base).resolve()
    entries = []
    for model_dir in sorted(export_base.iterdir()):
        served = not model_dir.name.startswith(".") and existing_versions(model_dir)
        if model_dir.is_dir() and served:
            entries.append("  config {\n"
                           f"    name: {_quoted(model_dir.name)}\n"
                           f"    base_path: {_quoted(str(model_dir))}\n"
                           '    model_platform: "tensorflow"\n'
                           "  }\n")
    return "model_config_list {\n" + "".join(entries) + "}\n"


def write_models_config(export_base):
    """(Re)writes `export_base/models.config` atomically; returns its path."""
    export_base = Path(export_base).resolve()
    path = export_base / MODELS_CONFIG
    text = models_config_text(export_base)
    with tempfile.NamedTemporaryFile("w", dir=export_base, prefix=".models.config.",
                                     delete=False) as handle:
        handle.write(text)
    # NamedTemporaryFile is private (0600); the server may run as another user.
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
    return path
