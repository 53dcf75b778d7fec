"""The SavedModel signatures of a choice-conditioned serving perturber (`choice_serving`).

Signatures (serving_default = opposite, as in every export):

- `perturb`: one dict {`image` float32 [N, H, W, C] in [0, 1], `hide` float32 [N, 3]} ->
  `perturbed` float32 [N, H, W, C], `male_score` float32 [N]. `hide` columns: gender,
  age_group, race (`config.HIDEABLE_ATTRIBUTES`), 1 hide, 0 keep (values in between mix the
  conditions, untrained). Columns of attributes the export was not trained to hide must be
  0; a value outside [0, 1], a NaN, or a row count other than the images' fails with
  InvalidArgumentError. The gender comes from the auxiliary CNN (hard label).
- `perturb_labelled`: {`image`, `hide`, `male` [N]}: `male` as in `same_labelled`.
- `hide_<attributes>` (`choice_names.hide_signatures`: `hide_gender`, `hide_age`,
  `hide_race`, their pairs, `hide_all`): `image` -> `perturbed`, `male_score`; `perturb`
  with that constant choice.
- `same`, `neutral`, `opposite`: `image` -> `perturbed`, `male_score`: gender alone, as in a
  gender export (`same` keeps everything, `opposite` hides gender with the other gender's
  prototype, `neutral` hides it with the neutral prototype; age and race kept).
Images are checked as `signatures._checked_image` does (N may be 0).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from semiadv.config import HIDEABLE_ATTRIBUTES
from semiadv.export import choice_names
from semiadv.export.serving_model import image_shape_of
from semiadv.export.signatures import _checked_image, _checked_male, _image_spec
from semiadv.prototypes.kinds import NEUTRAL, OPPOSITE, SAME

_CHOICES = len(HIDEABLE_ATTRIBUTES)


def hide_vector(attributes) -> list[float]:
    """The `hide` row hiding `attributes` and keeping the others."""
    return [float(name in attributes) for name in HIDEABLE_ATTRIBUTES]


def _checked_hide(hide, image, hide_attributes):
    """`hide`, failing with InvalidArgumentError unless it is [N, 3] of values in [0, 1],
    one row per image, 0 in the columns of attributes the export cannot hide."""
    hide = tf.raw_ops.EnsureShape(input=hide, shape=tf.TensorShape([None, _CHOICES]))
    untrained = tf.constant([[1.0 - value for value in hide_vector(hide_attributes)]])
    checks = [
        tf.debugging.assert_equal(tf.shape(hide)[0], tf.shape(image)[0],
                                  message="'hide' must have one row per image"),
        tf.debugging.assert_all_finite(hide, "'hide' has NaN or infinite values"),
        tf.debugging.assert_greater_equal(hide, 0.0, message="'hide' values must be in [0, 1]"),
        tf.debugging.assert_less_equal(hide, 1.0, message="'hide' values must be in [0, 1]"),
        tf.debugging.assert_equal(
            tf.reduce_sum(tf.abs(hide) * untrained), 0.0,
            message=f"'hide' asks to hide an attribute this export was not trained to hide "
                    f"(it hides {', '.join(hide_attributes)}; columns: "
                    f"{', '.join(HIDEABLE_ATTRIBUTES)})"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(hide)


def _run_model(model, image, male, hide):
    """The model's outputs, for a batch that may be empty (see `signatures._run_model`)."""
    count = tf.shape(image)[0]
    blank_image = tf.zeros(tf.concat([[1], tf.shape(image)[1:]], axis=0), image.dtype)
    image = tf.cond(count > 0, lambda: image, lambda: blank_image)
    male = tf.cond(count > 0, lambda: male, lambda: -tf.ones([1], tf.float32))
    hide = tf.cond(count > 0, lambda: hide, lambda: tf.zeros([1, _CHOICES], tf.float32))
    outputs = model({"image": image, "male": male, "hide": hide}, training=False)
    return {name: value[:count] for name, value in outputs.items()}


def _unknown_male(image):
    return -tf.ones(tf.shape(image)[:1], tf.float32)


def _result(outputs, output):
    return {"perturbed": outputs[output], "male_score": outputs["male_score"]}


def generic_endpoint(model, hide_attributes, labelled):
    image_shape = image_shape_of(model)

    def serve(inputs):
        image = _checked_image(inputs["image"], image_shape)
        hide = _checked_hide(inputs["hide"], image, hide_attributes)
        male = _checked_male(inputs["male"], image) if labelled else _unknown_male(image)
        return _result(_run_model(model, image, male, hide), "perturbed")
    return serve


def _fixed_endpoint(model, attributes, output="perturbed"):
    image_shape = image_shape_of(model)
    row = tf.constant([hide_vector(attributes)], tf.float32)

    def serve(image):
        image = _checked_image(image, image_shape)
        hide = tf.tile(row, [tf.shape(image)[0], 1])
        return _result(_run_model(model, image, _unknown_male(image), hide), output)
    return serve


def build_export_archive(model, hide_attributes):
    """A `keras.export.ExportArchive` with the signatures of a choice serving perturber.

    Args:
      model: a `choice_serving.build_choice_serving_perturber` model.
      hide_attributes: the attributes it was trained to hide (gender included).
    """
    image_shape = image_shape_of(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    # The first endpoint added becomes serving_default: hiding gender, as every export.
    for kind, attributes, output in ((OPPOSITE, ("gender",), "perturbed"),
                                     (SAME, (), "perturbed"),
                                     (NEUTRAL, (), "neutral")):
        archive.add_endpoint(kind, _fixed_endpoint(model, attributes, output),
                             input_signature=[_image_spec(image_shape)])
    hide_spec = tf.TensorSpec((None, _CHOICES), tf.float32, name="hide")
    archive.add_endpoint(choice_names.GENERIC,
                         generic_endpoint(model, hide_attributes, labelled=False),
                         input_signature=[{"image": _image_spec(image_shape), "hide": hide_spec}])
    archive.add_endpoint(choice_names.GENERIC_LABELLED,
                         generic_endpoint(model, hide_attributes, labelled=True),
                         input_signature=[{"image": _image_spec(image_shape), "hide": hide_spec,
                                           "male": tf.TensorSpec((None,), tf.float32,
                                                                 name="male")}])
    for name, attributes in choice_names.hide_signatures(hide_attributes).items():
        archive.add_endpoint(name, _fixed_endpoint(model, attributes),
                             input_signature=[_image_spec(image_shape)])
    return archive


def signature_names(hide_attributes):
    """Every signature a choice export has, besides serving_default (= opposite)."""
    return [SAME, NEUTRAL, OPPOSITE, choice_names.GENERIC, choice_names.GENERIC_LABELLED,
            *choice_names.hide_signatures(hide_attributes)]
