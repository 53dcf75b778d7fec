"""The semi-adversarial stage: the autoencoder trained against the frozen gender CNN and matcher."""

from __future__ import annotations

import tensorflow as tf

from semiadv.config import MIXED_PRECISION
from semiadv.models import dlib_resnet
from semiadv.train import flow, input_diversity, losses
from semiadv.train.autoencoder_task import PrototypeTask
from semiadv.train.dtype_policies import with_dtype_policy
from semiadv.train.task import known_gender


def classifier_views(config, images):
    """What one classifier reads of `images` (a sequence of [B, H, W, C]): jittered
    (`gender_jitter`) and randomly transformed (`gender_diversity`) as configured, or as
    they are. Called once per classifier, so each draws its own views."""
    images = list(images)
    if config.gender_jitter > 0:
        images = dlib_resnet.jittered_views(images, config.gender_jitter)
    if config.gender_diversity > 0:  # Per example too.
        images = [input_diversity.diverse_view(view, config.gender_diversity)
                  for view in images]
    return images


def likeness_terms(matcher, config, image, kept, edited, step):
    """The terms that keep the person and the face's look, weighted, per example.

    Shared by the gender SAN (`kept` = X'_SM, `edited` = X'_OP) and the choice SAN
    (`choice_task`: the keep-all output and the chosen one): lambda_M times the matcher's
    distances from X (to `kept` if match_same, to `edited` if match_opposite; from
    match_warmup_steps on), lambda_D times the pixel loss of `kept`, and the SSIM and colour
    terms of `edited`.

    Returns:
        (weighted sum [B], {"match_kept", "match_edited", "pixel", "dissimilarity",
        "colour"} [B] each, unweighted; a match term left out is 0, so the logs keep their
        columns).
    """
    # The matcher sees only the views a match term needs: with dlib's ResNet it is most
    # of the step's cost.
    outputs = {"kept": kept, "edited": edited}
    names = (["kept"] if config.match_same else []) + (
        ["edited"] if config.match_opposite else [])
    views = [image] + [outputs[name] for name in names]
    if config.effective_match_jitter > 0:  # One random shift, scale and blur per face.
        views = dlib_resnet.jittered_views(views, config.effective_match_jitter)
    # One call per view, not one on the concatenated views: the backward pass of a
    # concatenated call computes input gradients for X's half too, which no loss needs
    # (BENCHMARKS.md §2b).
    original_embedding, *embeddings = (
        tf.cast(matcher(view, training=False), tf.float32) for view in views)
    distances = {name: losses.match_distance(original_embedding, embedding)
                 for name, embedding in zip(names, embeddings)}
    pixel = losses.pixel_loss(image, kept, kind=config.pixel_loss)
    # Reported whatever their weights, so runs with and without them compare in the logs.
    dissimilarity = losses.structural_dissimilarity(image, edited)
    colour, colour_cost = losses.colour_difference_and_excess(image, edited,
                                                              config.colour_tolerance)
    match_on = tf.cast(step >= config.match_warmup_steps, tf.float32)
    weighted = (config.match_weight * match_on * tf.add_n(list(distances.values()))
                + config.pixel_weight * pixel + config.ssim_weight * dissimilarity
                + config.colour_weight * colour_cost)
    terms = {"match_kept": distances.get("kept", tf.zeros_like(pixel)),
             "match_edited": distances.get("edited", tf.zeros_like(pixel)),
             "pixel": pixel, "dissimilarity": dissimilarity, "colour": colour}
    return weighted, terms


class SanTask(PrototypeTask):
    """The semi-adversarial training of the autoencoder against frozen G and M.

    J = lambda_G [w_SM CE(G(X'_SM), y) + CE(G(X'_OP), 1 - y)]  (G reads jittered views if
        gender_jitter > 0, randomly transformed ones if gender_diversity > 0; with gender_same_target "original", KL(G(X) || G(X'_SM)) instead
        of CE(G(X'_SM), y)) + lambda_M ||M(X'_SM) - M(X)||^2
        (+ ||M(X'_OP) - M(X)||^2 if match_opposite, from match_warmup_steps on)
        + lambda_D pixel(X, X'_SM)
        + lambda_SSIM (1 - SSIM(X, X'_OP))
        + lambda_colour mean_pixels max(ΔE*ab(X, X'_OP) - tolerance, 0)

    (the SM match term only if match_same, which the paper has).

    w_SM = `gender_same_weight` (1 in the paper). The two fidelity terms (0 in the paper) keep
    the exported output X'_OP a realistic picture of the same face: without them the SAN hides
    gender by painting colour patches that also cost a real matcher its matches.

    With `config.gender_ensemble` = K > 0 (Ensemble SAN) the gender term is the mean of that
    bracket over G_0 (the paper's CNN) and the K extra frozen classifiers G_1..G_K, so
    lambda_G keeps its meaning. `gender_same`, `gender_opposite`, `accuracy_same` and
    `flip_rate_opposite` stay G_0's (comparable with runs without an ensemble);
    `flip_rate_ensemble` is the flip rate on X'_OP averaged over all 1 + K classifiers.

    Link k >= 2 of a sequential SAN (`config.flow_links`, `semiadv.train.flow`) is trained
    on the outputs of the frozen links before it: its X'_SM from their X'_SM, its X'_OP from
    their X'_OP, against its own auxiliary classifier G (no ensemble); X, y and the
    prototypes stay the original face's, so every term reads the chain's outputs against the
    original face.
    """

    name = "san"
    reports = ("loss", "gender_same", "gender_opposite", "match_same", "match_opposite", "pixel",
               "ssim_opposite", "colour_opposite", "accuracy_same", "flip_rate_opposite")

    def __init__(self, config, prototypes, load_models, link=1):
        """Args:
          config: the run's config.
          prototypes: the male and female prototypes.
          load_models: returns (autoencoder, gender CNN, matcher), plus as a 4th element a
            sequence of the `config.gender_ensemble` extra gender classifiers (may be left
            out when there are none; none for a link >= 2) and, for link k >= 2, as a 5th
            the k - 1 trained autoencoders of the links before it, first link first. For a
            link >= 2 the gender CNN is that link's auxiliary classifier. `build` calls it
            under the strategy scope so every network is mirrored like any model built there.
          link: which link of a sequential SAN this task trains (1: the only one without).
        """
        super().__init__(config, prototypes)
        if not 1 <= link <= config.flow_links:
            raise ValueError(f"link {link} is not one of the {config.flow_links} links")
        self._load_models = load_models
        self.link = link
        self.name = flow.link_stage(link)
        if config.gender_ensemble and link == 1:
            self.reports = SanTask.reports + ("flip_rate_ensemble",)

    def build(self):
        policy = MIXED_PRECISION[self.config.mixed_precision]
        autoencoder, gender, matcher, *rest = self._load_models()
        if len(rest) > 2:
            raise ValueError(f"load_models returned {3 + len(rest)} elements, not 3 to 5")
        members = tuple(rest[0]) if rest else ()
        earlier = tuple(rest[1]) if len(rest) > 1 else ()
        if self.link == 1 and len(members) != self.config.gender_ensemble:
            raise ValueError(f"load_models returned {len(members)} extra gender classifiers, "
                             f"but gender_ensemble is {self.config.gender_ensemble}")
        if self.link > 1 and members:
            raise ValueError(f"load_models returned {len(members)} extra gender classifiers "
                             f"for link {self.link}: a later link has its one classifier only")
        if len(earlier) != self.link - 1:
            raise ValueError(f"load_models returned {len(earlier)} earlier links for link "
                             f"{self.link}, not {self.link - 1}")
        # Loaded networks keep the policy they were pre-trained with: all compute under this
        # run's policy instead.
        self.model, self.gender = (with_dtype_policy(model, policy)
                                   for model in (autoencoder, gender))
        # dlib's network stays float32 whole: its descriptors must stay close to dlib's own,
        # and bfloat16 keeps only about three significant digits.
        self.matcher = with_dtype_policy(
            matcher, "float32" if self.config.matcher_network == "dlib_resnet" else policy)
        self.gender_members = tuple(with_dtype_policy(model, policy) for model in members)
        self.earlier_links = tuple(with_dtype_policy(model, policy) for model in earlier)
        # Frozen: their variables never reach the optimizer, and Dropout and BatchNormalization
        # stay in inference mode (training=False below).
        for frozen in (self.gender, self.matcher, *self.gender_members, *self.earlier_links):
            frozen.trainable = False
        return self.model

    def _outputs(self, image, same, opposite, training):
        """{"same", "opposite"}: this link's X'_SM and X'_OP of each face, through the
        frozen earlier links first (`flow.chain_outputs`)."""
        prototypes = {"same_prototype": same, "opposite_prototype": opposite}
        if not self.earlier_links:
            return self.model({"image": image, **prototypes}, training=training)
        inputs = flow.chain_outputs(self.earlier_links, image, same, opposite)
        # Frozen links: no gradient flows into them, so none is computed through them.
        return {kind: self.model({"image": tf.stop_gradient(inputs[kind]), **prototypes},
                                 training=training)[kind]
                for kind in ("same", "opposite")}

    def summary_images(self, batch):
        """Originals and the chain's outputs (this link's) of a batch, for `--image_summaries`."""
        same, opposite = self.prototypes_of(batch)
        return {"original": batch["image"],
                **self._outputs(batch["image"], same, opposite, training=False)}

    def per_example(self, batch, step):
        config = self.config
        image, male = batch["image"], batch["male"]
        known = known_gender(male)
        male = tf.maximum(male, 0)
        same, opposite = self.prototypes_of(batch)
        outputs = self._outputs(image, same, opposite, training=True)
        perturbed_same, perturbed_opposite = outputs["same"], outputs["opposite"]

        # G_0 (the paper's CNN) first: its terms are the reported ones.
        logits, gender_same = [], []
        for classifier in (self.gender, *self.gender_members):
            logits_same, logits_opposite = (
                classifier(view, training=False)
                for view in classifier_views(config, (perturbed_same, perturbed_opposite)))
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

        likeness, terms = likeness_terms(self.matcher, config, image, perturbed_same,
                                         perturbed_opposite, step)
        total = config.gender_weight * gender + likeness
        report = {
            "loss": total, "gender_same": gender_same[0], "gender_opposite": gender_opposite[0],
            "match_same": terms["match_kept"], "match_opposite": terms["match_edited"],
            "pixel": terms["pixel"], "ssim_opposite": 1.0 - terms["dissimilarity"],
            "colour_opposite": terms["colour"],
            "accuracy_same": losses.gender_accuracy(logits[0][0], male),
            "flip_rate_opposite": flip_rates[0],
        }
        if self.gender_members:
            report["flip_rate_ensemble"] = tf.add_n(flip_rates) / float(len(flip_rates))
        return total, report
