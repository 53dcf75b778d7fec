"""The SavedModel signatures of a serving perturber, for TF Serving and `tf.saved_model.load`.

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

import keras
import tensorflow as tf

from semiadv.data import image_ops
from semiadv.export.serving_model import image_shape_of
from semiadv.prototypes.kinds import KINDS, NEUTRAL, OPPOSITE, SAME

# The first endpoint added becomes serving_default: hiding gender is the point of the SAN.
_ENDPOINT_ORDER = (OPPOSITE, SAME, NEUTRAL)


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
    # Negative = "let the gender CNN decide" (see `serving_model.build_serving_perturber`).
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
        image = image_ops.resize_uint8(image, height, channels)
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
