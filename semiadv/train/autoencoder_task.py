"""The autoencoder's pre-training, and the base of every task that trains the autoencoder."""

from __future__ import annotations

import tensorflow as tf

from semiadv.config import TrainConfig
from semiadv.models import autoencoders, choice_autoencoder
from semiadv.prototypes import average, mixing
from semiadv.train import losses
from semiadv.train.task import Task


class PrototypeTask(Task):
    """A task that trains the autoencoder on faces with their same and opposite prototypes."""

    augment = "flip"

    def __init__(self, config: TrainConfig, prototypes: average.Prototypes):
        super().__init__(config)
        average.check_shape(prototypes, config.data.image_size, config.data.channels)
        self.prototype_male = tf.constant(prototypes.male)
        self.prototype_female = tf.constant(prototypes.female)
        self.landmark_template = None
        if config.warp_prototypes:
            if prototypes.landmarks is None:
                raise ValueError(f"--warp_prototypes needs landmarks, and {config.data.dataset} "
                                 "has none (only celeb_a does)")
            self.landmark_template = tf.constant(prototypes.landmarks)

    def prototypes_of(self, batch):
        """(same, opposite) prototypes [B, H, W, C] of each face of `batch`."""
        male = tf.maximum(batch["male"], 0)
        same = mixing.same_prototype(male, self.prototype_male, self.prototype_female)
        opposite = mixing.opposite_prototype(male, self.prototype_male,
                                                     self.prototype_female)
        if "flipped" in batch:
            # The pipeline flipped some faces: their prototypes follow (the paper's code did not).
            same, opposite = mixing.flip_where([same, opposite], batch["flipped"])
        if self.landmark_template is not None:
            # The mean face's landmarks onto this face's (flipped with it by the pipeline).
            same, opposite = (mixing.warp_to_landmarks(p, batch["landmarks"],
                                                               self.landmark_template)
                              for p in (same, opposite))
        return same, opposite

    def summary_images(self, batch):
        """Originals and both outputs of a batch, for `--image_summaries`."""
        same, opposite = self.prototypes_of(batch)
        model = self.model
        if self.config.hide_attributes:  # Keep all, and hide gender alone.
            from semiadv.train.choice_task import ChoiceAsGender  # It imports this module.

            model = ChoiceAsGender(model)
        outputs = model({"image": batch["image"], "same_prototype": same,
                         "opposite_prototype": opposite}, training=False)
        return {"original": batch["image"], "same": outputs["same"],
                "opposite": outputs["opposite"]}


class AutoencoderTask(PrototypeTask):
    """Pre-trains the autoencoder to reconstruct each face from itself and its P_SM.

    With `config.hide_attributes` it is the choice autoencoder
    (`choice_autoencoder.build_choice_autoencoder`), pre-trained on the all-kept choice.
    """

    name = "autoencoder"
    reports = ("pixel",)

    def build(self):
        nets = self.config.networks
        build = (choice_autoencoder.build_choice_autoencoder if self.config.hide_attributes
                 else autoencoders.build_autoencoder)
        self.model = build(
            self.data.image_size, self.data.channels, encoder_filters=nets.encoder_filters,
            decoder_filters=nets.decoder_filters, residual=nets.residual,
            upsampling=nets.upsampling, max_change=nets.max_change,
            encoder_prototype=nets.encoder_prototype)
        return self.model

    def per_example(self, batch, step):
        same, opposite = self.prototypes_of(batch)
        if self.config.hide_attributes:  # Every attribute kept: the face itself.
            keep = tf.zeros([tf.shape(same)[0], choice_autoencoder.CHOICES])
            output = self.model({"image": batch["image"], "same_prototype": same,
                                 "prototype": same, "hide": keep}, training=True)["perturbed"]
            pixel = losses.pixel_loss(batch["image"], output, kind=self.config.pixel_loss)
            return pixel, {"pixel": pixel}
        outputs = self.model({"image": batch["image"], "same_prototype": same,
                              "opposite_prototype": opposite}, training=True)
        pixel = losses.pixel_loss(batch["image"], outputs["same"], kind=self.config.pixel_loss)
        return pixel, {"pixel": pixel}
