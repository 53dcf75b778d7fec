"""The gender stages: the auxiliary gender CNN and the Ensemble SAN's extra classifiers."""

from __future__ import annotations

import tensorflow as tf

from semiadv.config import TrainConfig
from semiadv.models import gender_classifiers
from semiadv.train import ensemble, losses, robust
from semiadv.train.task import Task, known_gender


class GenderTask(Task):
    """The auxiliary gender CNN, trained with cross-entropy.

    With `config.gender_robust_radius` > 0 it is trained adversarially: on the faces within
    that L2 radius that it misreads most (`robust.l2_adversarial_images`), so the reported
    cross-entropy and accuracy are those on the adversarial faces.
    """

    name = "gender"
    augment = "flip"
    reports = ("cross_entropy", "accuracy")

    def build(self):
        self.model = gender_classifiers.build_gender_classifier(
            self.data.image_size, self.data.channels, width=self.config.networks.classifier_width)
        return self.model

    def per_example(self, batch, step):
        known = known_gender(batch["male"])
        male = tf.maximum(batch["male"], 0)
        images = batch["image"]
        if self.config.gender_robust_radius > 0:
            radius = robust.warmed_up_radius(self.config.gender_robust_radius,
                                             self.config.gender_robust_warmup, step)
            images = robust.l2_adversarial_images(
                self.model, images, male, known, radius, self.config.gender_robust_steps)
        logits = self.model(images, training=True)
        cross_entropy = losses.gender_cross_entropy(logits, male) * known
        return cross_entropy, {"cross_entropy": cross_entropy,
                               "accuracy": losses.gender_accuracy(logits, male)}


class GenderMemberTask(GenderTask):
    """An ensemble member: `GenderTask`'s cross-entropy on the network
    `ensemble.gender_member` says."""

    def __init__(self, config: TrainConfig, index: int):
        super().__init__(config)
        self.member = ensemble.gender_member(config, index)
        self.name = self.member.stage
        self.augment = self.member.augment

    def build(self):
        self.model = ensemble.build_gender_member(self.member, self.data.image_size,
                                                  self.data.channels)
        return self.model

    def per_example(self, batch, step):
        if self.augment == "views":  # One augmented view is the face it learns from.
            batch = {**batch, "image": batch["view_a"]}
        return super().per_example(batch, step)
