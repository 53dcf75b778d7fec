"""The four training stages as tasks: what to build, and the per-example losses of one step.

A task owns its models and its loss; `semiadv.train.loop` owns the loop, the strategy,
checkpoints and summaries. `per_example` runs inside `strategy.run` on one replica's batch
and returns per-example values only: the trainer reduces the total once with
`tf.nn.compute_average_loss`, and averages every reported value with metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re

import keras
import tensorflow as tf

from semiadv.models import dlib_resnet
from semiadv.train import losses
from semiadv.models import networks
from semiadv.train import robust
from semiadv.prototypes import prototypes as prototypes_lib
from semiadv.config import MIXED_PRECISION, TrainConfig

@contextlib.contextmanager
def dtype_policy(mixed_precision: str):
    """Sets the global Keras dtype policy of `TrainConfig.mixed_precision` for a block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(MIXED_PRECISION[mixed_precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_dtype_policy(model: keras.Model, policy: str) -> keras.Model:
    """`model` with every layer but the float32 output layers computing under `policy`.

    Models loaded from `.keras` files keep the per-layer policies they were saved with, so a
    float32 pre-trained network is cloned (same weights) to train or run under another
    policy. Returns `model` itself when nothing changes.
    """
    def target(layer):
        return "float32" if networks.computes_in_float32(layer.name) else policy

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if all(layer.dtype_policy.name == target(layer) for layer in layers):
        return model

    def clone_layer(layer):
        layer_config = layer.get_config()
        layer_config["dtype"] = target(layer)
        return layer.__class__.from_config(layer_config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    clone.trainable = model.trainable
    return clone


def _known_gender(male):
    """1.0 where the gender label is known (0/1), 0.0 where it is -1."""
    return tf.cast(male >= 0, tf.float32)


class Task:
    """One stage: `build` (under the strategy scope), then `per_example` in each step."""

    name: str = ""
    augment: str | None = None
    reports: tuple[str, ...] = ()  # The names `per_example` reports, in order.

    def __init__(self, config: TrainConfig):
        self.config = config
        self.data = config.data

    def build(self) -> keras.Model:
        """Builds (or loads) every model; returns the one whose variables are trained."""
        raise NotImplementedError

    def per_example(self, batch, step) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Returns (total loss [B], {name: per-example values [B] to average and log})."""
        raise NotImplementedError


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
        self.model = networks.build_gender_classifier(
            self.data.image_size, self.data.channels, width=self.config.networks.classifier_width)
        return self.model

    def per_example(self, batch, step):
        known = _known_gender(batch["male"])
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


@dataclasses.dataclass(frozen=True)
class GenderMember:
    """One extra auxiliary gender classifier of the Ensemble SAN (see `gender_member`).

    Attributes:
      index: k >= 1 (the paper's CNN, in stage `gender`, is member 0).
      architecture: "vgg" (`networks.build_vgg_gender_classifier`) or "cnn" (the paper's
        `networks.build_gender_classifier`).
      width: width multiplier of that network.
      augment: the training augmentation: "flip", or "views" (shift, scale, flip, brightness
        and contrast: `data.augment_view`).
      seed: the weight-initialisation seed.
    """

    index: int
    architecture: str
    width: float
    augment: str
    seed: int

    @property
    def stage(self) -> str:
        return member_stage(self.index)


# Member k's (architecture, width relative to --classifier_width), cycling every 3 members,
# while the augmentation alternates every member: members 1..6 cover all six pairs.
_MEMBER_NETWORKS = (("vgg", 1.0), ("cnn", 0.5), ("cnn", 2.0))
_MEMBER_AUGMENTS = ("views", "flip")
_MEMBER_STAGE = re.compile(r"gender_([1-9][0-9]*)")


def member_stage(index: int) -> str:
    """The stage (and work dir folder) of ensemble member `index`: `gender_<index>`."""
    return f"gender_{index}"


def member_index(stage: str) -> int | None:
    """k for a stage named `gender_<k>` (k >= 1), else None."""
    match = _MEMBER_STAGE.fullmatch(stage)
    return int(match.group(1)) if match else None


def gender_member(config: TrainConfig, index: int) -> GenderMember:
    """The recipe of ensemble member `index` (k >= 1): a deterministic function of k.

    With w = `config.networks.classifier_width` and s = `config.data.seed`:

      k mod 3 = 1: VGG-style, batch-normalised classifier at width w
      k mod 3 = 2: the paper's CNN at width 0.5 w
      k mod 3 = 0: the paper's CNN at width 2 w
      augment: "views" for odd k, "flip" for even k
      seed: s + k (the paper's CNN is initialised from s)

    So member 1 is a VGG trained on strongly augmented views, member 2 a half-width CNN
    trained on flips, member 3 a double-width CNN on views, and so on. The data split and
    the training order stay those of `config.data` (the seed of the split cannot change).
    None is the evaluation's independent ResNet: it must stay unseen by the SAN.
    """
    if index < 1:
        raise ValueError(f"ensemble members are numbered from 1, got {index}")
    architecture, relative_width = _MEMBER_NETWORKS[(index - 1) % len(_MEMBER_NETWORKS)]
    return GenderMember(index=index, architecture=architecture,
                        width=relative_width * config.networks.classifier_width,
                        augment=_MEMBER_AUGMENTS[(index - 1) % len(_MEMBER_AUGMENTS)],
                        seed=config.data.seed + index)


def build_gender_member(member: GenderMember, image_size: int, channels: int) -> keras.Model:
    """Member `member`'s network, initialised from its own seed (same seed, same weights)."""
    # Like the evaluation's independent networks: an explicit seed right before building,
    # whatever seed the caller (the trainer seeds with the data seed) set before.
    keras.utils.set_random_seed(member.seed)
    build = {"vgg": networks.build_vgg_gender_classifier,
             "cnn": networks.build_gender_classifier}[member.architecture]
    return build(image_size, channels, width=member.width, name=f"gender_member{member.index}")


class GenderMemberTask(GenderTask):
    """An ensemble member: `GenderTask`'s cross-entropy on the network `gender_member` says."""

    def __init__(self, config: TrainConfig, index: int):
        super().__init__(config)
        self.member = gender_member(config, index)
        self.name = self.member.stage
        self.augment = self.member.augment

    def build(self):
        self.model = build_gender_member(self.member, self.data.image_size, self.data.channels)
        return self.model

    def per_example(self, batch, step):
        if self.augment == "views":  # One augmented view is the face it learns from.
            batch = {**batch, "image": batch["view_a"]}
        return super().per_example(batch, step)


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
        self.model = networks.build_matcher(
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


class _PrototypeTask(Task):
    """A task whose batches need the same and opposite prototypes of each face."""

    def __init__(self, config: TrainConfig, prototypes: prototypes_lib.Prototypes):
        super().__init__(config)
        prototypes_lib.check_shape(prototypes, config.data.image_size, config.data.channels)
        self.prototype_male = tf.constant(prototypes.male)
        self.prototype_female = tf.constant(prototypes.female)
        self.landmark_template = None
        if config.warp_prototypes:
            if prototypes.landmarks is None:
                raise ValueError(f"--warp_prototypes needs landmarks, and {config.data.dataset} "
                                 "has none (only celeb_a does)")
            self.landmark_template = tf.constant(prototypes.landmarks)

    augment = "flip"

    def prototypes_of(self, batch):
        male = tf.maximum(batch["male"], 0)
        same = prototypes_lib.same_prototype(male, self.prototype_male, self.prototype_female)
        opposite = prototypes_lib.opposite_prototype(male, self.prototype_male,
                                                     self.prototype_female)
        if "flipped" in batch:
            # The pipeline flipped some faces: their prototypes follow (the paper's code did not).
            same, opposite = prototypes_lib.flip_where([same, opposite], batch["flipped"])
        if self.landmark_template is not None:
            # The mean face's landmarks onto this face's (flipped with it by the pipeline).
            same, opposite = (prototypes_lib.warp_to_landmarks(p, batch["landmarks"],
                                                               self.landmark_template)
                              for p in (same, opposite))
        return same, opposite

    def summary_images(self, batch):
        """Originals and both outputs of a batch, for `--image_summaries`."""
        same, opposite = self.prototypes_of(batch)
        outputs = self.model({"image": batch["image"], "same_prototype": same,
                              "opposite_prototype": opposite}, training=False)
        return {"original": batch["image"], "same": outputs["same"],
                "opposite": outputs["opposite"]}

    def build_autoencoder(self):
        nets = self.config.networks
        return networks.build_autoencoder(self.data.image_size, self.data.channels,
                                          encoder_filters=nets.encoder_filters,
                                          decoder_filters=nets.decoder_filters,
                                          residual=nets.residual,
                                          upsampling=nets.upsampling,
                                          max_change=nets.max_change,
                                          encoder_prototype=nets.encoder_prototype)


class AutoencoderTask(_PrototypeTask):
    """Pre-trains the autoencoder to reconstruct each face from itself and its P_SM."""

    name = "autoencoder"
    reports = ("pixel",)

    def build(self):
        self.model = self.build_autoencoder()
        return self.model

    def per_example(self, batch, step):
        same, opposite = self.prototypes_of(batch)
        outputs = self.model({"image": batch["image"], "same_prototype": same,
                              "opposite_prototype": opposite}, training=True)
        pixel = losses.pixel_loss(batch["image"], outputs["same"], kind=self.config.pixel_loss)
        return pixel, {"pixel": pixel}


class SanTask(_PrototypeTask):
    """The semi-adversarial training of the autoencoder against frozen G and M.

    J = lambda_G [w_SM CE(G(X'_SM), y) + CE(G(X'_OP), 1 - y)]  (G reads jittered views if
        gender_jitter > 0; with gender_same_target "original", KL(G(X) || G(X'_SM)) instead
        of CE(G(X'_SM), y)) + lambda_M ||M(X'_SM) - M(X)||^2
        (+ ||M(X'_OP) - M(X)||^2 if match_opposite, from match_warmup_steps on)
        + lambda_D pixel(X, X'_SM)
        + lambda_SSIM (1 - SSIM(X, X'_OP)) + lambda_colour mean_pixels max(ΔE*ab(X, X'_OP) - tolerance, 0)

    (the SM match term only if match_same, which the paper has).

    w_SM = `gender_same_weight` (1 in the paper). The two fidelity terms (0 in the paper) keep
    the exported output X'_OP a realistic picture of the same face: without them the SAN hides
    gender by painting colour patches that also cost a real matcher its matches.

    With `config.gender_ensemble` = K > 0 (Ensemble SAN) the gender term is the mean of that
    bracket over G_0 (the paper's CNN) and the K extra frozen classifiers G_1..G_K, so
    lambda_G keeps its meaning. `gender_same`, `gender_opposite`, `accuracy_same` and
    `flip_rate_opposite` stay G_0's (comparable with runs without an ensemble);
    `flip_rate_ensemble` is the flip rate on X'_OP averaged over all 1 + K classifiers.
    """

    name = "san"
    reports = ("loss", "gender_same", "gender_opposite", "match_same", "match_opposite", "pixel",
               "ssim_opposite", "colour_opposite", "accuracy_same", "flip_rate_opposite")

    def __init__(self, config, prototypes, load_models):
        """`load_models()` returns (autoencoder, gender CNN, matcher), plus as a 4th element
        a sequence of the `config.gender_ensemble` extra gender classifiers (may be left out
        when there are none). `build` calls it under the strategy scope so every network is
        mirrored like any model built there."""
        super().__init__(config, prototypes)
        self._load_models = load_models
        if config.gender_ensemble:
            self.reports = SanTask.reports + ("flip_rate_ensemble",)

    def build(self):
        policy = MIXED_PRECISION[self.config.mixed_precision]
        autoencoder, gender, matcher, *rest = self._load_models()
        if len(rest) > 1:
            raise ValueError(f"load_models returned {3 + len(rest)} elements, not 3 or 4")
        members = tuple(rest[0]) if rest else ()
        if len(members) != self.config.gender_ensemble:
            raise ValueError(f"load_models returned {len(members)} extra gender classifiers, "
                             f"but gender_ensemble is {self.config.gender_ensemble}")
        # Loaded networks keep the policy they were pre-trained with: all compute under this
        # run's policy instead.
        self.model, self.gender = (with_dtype_policy(model, policy)
                                   for model in (autoencoder, gender))
        # dlib's network stays float32 whole: its descriptors are compared to 1e-3 of dlib's,
        # and bfloat16 would round them to ~3 digits.
        self.matcher = with_dtype_policy(
            matcher, "float32" if self.config.matcher_network == "dlib_resnet" else policy)
        self.gender_members = tuple(with_dtype_policy(model, policy) for model in members)
        # Frozen: their variables never reach the optimizer, and Dropout and BatchNormalization
        # stay in inference mode (training=False below).
        for frozen in (self.gender, self.matcher, *self.gender_members):
            frozen.trainable = False
        return self.model

    def per_example(self, batch, step):
        config = self.config
        image, male = batch["image"], batch["male"]
        known = _known_gender(male)
        male = tf.maximum(male, 0)
        same, opposite = self.prototypes_of(batch)
        outputs = self.model({"image": image, "same_prototype": same,
                              "opposite_prototype": opposite}, training=True)
        perturbed_same, perturbed_opposite = outputs["same"], outputs["opposite"]

        # G_0 (the paper's CNN) first: its terms are the reported ones.
        logits, gender_same = [], []
        for classifier in (self.gender, *self.gender_members):
            views = (perturbed_same, perturbed_opposite)
            if config.gender_jitter > 0:  # A fresh draw per classifier: more diverse views.
                views = dlib_resnet.jittered_views(list(views), config.gender_jitter)
            logits_same, logits_opposite = (classifier(view, training=False) for view in views)
            logits.append((logits_same, logits_opposite))
            if config.gender_same_target == "original":  # Read as X is, no more, no less.
                gender_same.append(losses.gender_reading_change(
                    logits_same, classifier(image, training=False)))
            else:
                gender_same.append(losses.gender_cross_entropy(logits_same, male) * known)
        gender_opposite = [losses.flipped_gender_cross_entropy(logits_opposite, male) * known
                           for _, logits_opposite in logits]
        flip_rates = [losses.flip_rate(logits_opposite, male) for _, logits_opposite in logits]
        gender = ((config.gender_same_weight * tf.add_n(gender_same) + tf.add_n(gender_opposite))
                  / float(len(logits)))

        # The matcher sees only the views a match term needs: with dlib's ResNet it is most
        # of the step's cost.
        names = (["same"] if config.match_same else []) + (
            ["opposite"] if config.match_opposite else [])
        views = [image] + [outputs[name] for name in names]
        if config.effective_match_jitter > 0:  # One random shift, scale and blur per face.
            views = dlib_resnet.jittered_views(views, config.effective_match_jitter)
        # One call per view, not one on the concatenated views: the backward pass of a
        # concatenated call computes input gradients for X's half too, which no loss needs
        # (measured 15% slower, BENCHMARKS.md §2b).
        original_embedding, *embeddings = (
            tf.cast(self.matcher(view, training=False), tf.float32) for view in views)
        distances = {name: losses.match_distance(original_embedding, embedding)
                     for name, embedding in zip(names, embeddings)}
        # A term left out is reported as 0, so the logs keep their columns.
        match_same, match_opposite = (distances.get(name, tf.zeros_like(male, tf.float32))
                                      for name in ("same", "opposite"))
        match = tf.add_n(list(distances.values()))
        pixel = losses.pixel_loss(image, perturbed_same, kind=config.pixel_loss)
        # Reported whatever their weights, so runs with and without them compare in the logs.
        dissimilarity = losses.structural_dissimilarity(image, perturbed_opposite)
        colour, colour_cost = losses.colour_difference_and_excess(
            image, perturbed_opposite, config.colour_tolerance)

        match_on = tf.cast(step >= config.match_warmup_steps, tf.float32)
        total = (config.gender_weight * gender
                 + config.match_weight * match_on * match + config.pixel_weight * pixel
                 + config.ssim_weight * dissimilarity + config.colour_weight * colour_cost)
        report = {
            "loss": total, "gender_same": gender_same[0], "gender_opposite": gender_opposite[0],
            "match_same": match_same, "match_opposite": match_opposite, "pixel": pixel,
            "ssim_opposite": 1.0 - dissimilarity, "colour_opposite": colour,
            "accuracy_same": losses.gender_accuracy(logits[0][0], male),
            "flip_rate_opposite": flip_rates[0],
        }
        if self.gender_members:
            report["flip_rate_ensemble"] = tf.add_n(flip_rates) / float(len(flip_rates))
        return total, report
