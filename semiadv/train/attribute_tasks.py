"""The auxiliary age group and race classifiers of a choice-conditioned SAN.

With `TrainConfig.hide_attributes` naming age_group or race, each gets a classifier like the
paper's gender CNN (`gender_classifiers.build_attribute_classifier`), pre-trained in its own
stage (named after the attribute) with the gender stage's steps, learning rate and width, and
frozen while the SAN is trained against it (`semiadv.train.choice_task`). With
`TrainConfig.attribute_robust_radius` > 0 it learns adversarially, as the robust gender CNN.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from semiadv.config import TrainConfig
from semiadv.data import attributes
from semiadv.models import gender_classifiers
from semiadv.train import losses, robust
from semiadv.train.task import Task

# The stages, named after the example key of the labels they learn.
ATTRIBUTE_STAGES = ("age_group", "race")


def classes(attribute: str) -> int:
    """How many values `attribute` has (its classifier's logits)."""
    return len(attributes.VALUE_NAMES[attribute])


def build_classifier(config: TrainConfig, attribute: str) -> keras.Model:
    """The untrained auxiliary classifier of `attribute`."""
    return gender_classifiers.build_attribute_classifier(
        config.data.image_size, config.data.channels, classes(attribute),
        width=config.networks.classifier_width, name=f"{attribute}_classifier",
        grey=config.attribute_grey)


class AttributeTask(Task):
    """Cross-entropy on the faces whose `attribute` is known (-1 labels contribute 0); with
    `attribute_robust_radius` on the faces within that L2 radius it misreads most (the
    reported cross-entropy and accuracy are then those on the adversarial faces)."""

    augment = "flip"
    reports = ("cross_entropy", "accuracy", "known")

    def __init__(self, config: TrainConfig, attribute: str):
        if attribute not in ATTRIBUTE_STAGES:
            raise ValueError(f"no auxiliary classifier for {attribute!r}: use one of "
                             f"{ATTRIBUTE_STAGES}")
        super().__init__(config)
        self.attribute = attribute
        self.name = attribute

    def build(self):
        self.model = build_classifier(self.config, self.attribute)
        return self.model

    def per_example(self, batch, step):
        labels = tf.reshape(tf.cast(batch[self.attribute], tf.int32), [-1])
        known = tf.cast(labels >= 0, tf.float32)
        images = batch["image"]
        if self.config.attribute_robust_radius > 0:
            # As the robust gender CNN: trained on its own worst faces within a small ball,
            # it cannot be moved by patterns only it reads (`semiadv.train.robust`).
            images = robust.l2_adversarial_images(
                self.model, images, None, known, self.config.attribute_robust_radius,
                self.config.attribute_robust_steps,
                per_example_loss=lambda logits: losses.attribute_cross_entropy(logits, labels))
        logits = self.model(images, training=True)
        cross_entropy = losses.attribute_cross_entropy(logits, labels)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels),
                          tf.float32)
        # Accuracy over all faces (unknown ones count as misses): `known` says how many were.
        return cross_entropy, {"cross_entropy": cross_entropy, "accuracy": correct * known,
                               "known": known}
