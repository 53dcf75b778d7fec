"""The matcher stage: the auxiliary face matcher, trained with the triplet loss."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from semiadv.config import TrainConfig
from semiadv.models import dlib_resnet, matchers
from semiadv.train import losses
from semiadv.train.task import Task


class MatcherTask(Task):
    """The auxiliary face matcher, trained with the triplet loss on two views of each face.

    Both views of a photo are positives of each other; photos of the same identity are
    positives too where the dataset labels identities. Without identities (UTKFace) the
    matcher learns from the augmented pairs alone.
    """

    name = "matcher"
    augment = "views"
    reports = ("triplet", "view_distance")

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        if config.matcher_dataset:  # Identities from another set, at the same size.
            self.data = dataclasses.replace(config.data, dataset=config.matcher_dataset)

    def build(self):
        if self.config.matcher_network == "dlib_resnet":  # --matcher_finetune
            self.model = dlib_resnet.build_dlib_matcher(self.data.image_size, self.data.channels)
            return self.model
        self.model = matchers.build_matcher(
            self.data.image_size, self.data.channels,
            embedding_dim=self.config.networks.embedding_dim,
            width=self.config.networks.matcher_width)
        return self.model

    def per_example(self, batch, step):
        views = tf.concat([batch["view_a"], batch["view_b"]], axis=0)
        count = tf.shape(batch["identity"])[0]
        # Unknown identities get a label of their own (-1 - index): only their other view
        # is a positive.
        labels = tf.where(batch["identity"] >= 0, batch["identity"],
                          -1 - tf.range(count, dtype=tf.int64))
        labels = tf.concat([labels, labels], axis=0)
        embeddings = self.model(views, training=True)
        triplet = losses.triplet_loss(embeddings, labels, margin=self.config.triplet_margin,
                                      mining=self.config.triplet_mining)
        # Each photo's loss is the mean of its two views' anchor losses: one value per example.
        per_photo = 0.5 * (triplet[:count] + triplet[count:])
        view_distance = losses.match_distance(embeddings[:count], embeddings[count:])
        return per_photo, {"triplet": per_photo, "view_distance": view_distance}
