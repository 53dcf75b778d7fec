"""The choice-conditioned SAN stage (PrivacyNet, Mirjalili et al., IEEE TIP 2020).

With `TrainConfig.hide_attributes` the SAN stage trains `choice_autoencoder` instead of the
gender autoencoder: each face gets a random choice c (each attribute of `hide_attributes`
hidden with probability 1/2, the others kept) and two outputs from the same weights,

    X'_0 = AE(X, P_SM, keep all)        the SM analogue: the face, every attribute kept
    X'_c = AE(X, P_c, c)                P_c = P_OP where gender is hidden, else P_SM

and the loss, per face (each attribute's terms 0 where its label is unknown, -1):

    lambda_G / (1 + K) sum over G_0..G_K [w_SM keep_G(X'_0) + (h_g CE(G(X'_c), 1 - y)
                                          + (1 - h_g) w_SM keep_G(X'_c))]
    + lambda_A sum over a in age_group, race hideable [KL(A(X) || A(X'_0))
                 + h_a hidden_A(X'_c) + (1 - h_a) KL(A(X) || A(X'_c))]
    + lambda_M (||M(X'_0) - M(X)||^2 if match_same + ||M(X'_c) - M(X)||^2 if match_opposite)
    + lambda_D pixel(X, X'_0) + lambda_SSIM (1 - SSIM(X, X'_c))
    + lambda_colour mean max(ΔE*ab(X, X'_c) - tolerance, 0)

keep_G is the gender recipe's SM term (CE against the label, or with gender_same_target
"original" the KL of G's reading of the output from its reading of X). A hidden gender is
flipped, as the gender SAN's X'_OP (it has a target: the other gender and its prototype); a
hidden age group or race is, by default (`attribute_hidden_target` "chance"), pushed to
chance for its frozen auxiliary classifier A, hidden_A = KL(uniform || A(X'_c)): it has no
one other value to become, and chance is what an observer should be left with. With "other"
it is pushed, as gender is, towards another value, hidden_A = CE(A(X'_c), other_value(y)):
a definite change of look, which readers the SAN never saw might follow more than a reading
moved to chance. Measured on UTKFace (RESULTS.md), it hid age from unseen readers 10 points
more, but as stripes under the eyes, not an older or younger face; race did not move. The
fidelity terms sit where the gender recipe puts them: the pixel term holds the all-kept
output X'_0 to the face, the SSIM and colour terms hold the chosen one X'_c.
"""

from __future__ import annotations

import tensorflow as tf

from semiadv.config import HIDEABLE_ATTRIBUTES, MIXED_PRECISION
from semiadv.train import losses, san_task
from semiadv.train.autoencoder_task import PrototypeTask
from semiadv.train.dtype_policies import with_dtype_policy
from semiadv.train.task import known_gender


def sample_choice(config, batch_size, seed=None):
    """float32 [B, 3] random choices: each hideable attribute hidden (1) with probability
    1/2, independently per face; columns of attributes that cannot be hidden stay 0."""
    coins = tf.cast(tf.random.uniform([batch_size, len(HIDEABLE_ATTRIBUTES)], seed=seed) < 0.5,
                    tf.float32)
    allowed = tf.constant([[float(name in config.hide_attributes)
                            for name in HIDEABLE_ATTRIBUTES]])
    return coins * allowed


def other_value(labels, classes):
    """The value a hidden attribute is pushed towards with `attribute_hidden_target` "other":
    the face's own shifted by half the classes, modulo their number (age groups 0, 1, 2, 3
    -> 2, 3, 0, 1; the five race codes by 2), so each value has one fixed target, as far
    from it in the list as any; unknown labels (-1) stay -1."""
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    shifted = tf.math.floormod(labels + classes // 2, classes)
    return tf.where(labels >= 0, shifted, labels)


def chosen_prototype(hide, same, opposite):
    """P_c [B, H, W, C]: the opposite prototype where gender is hidden (hide[:, 0] = 1), the
    same-gender one where kept (soft choices mix them)."""
    hide_gender = tf.reshape(tf.cast(hide[:, 0], same.dtype), [-1, 1, 1, 1])
    return same + hide_gender * (opposite - same)


class ChoiceAsGender:
    """A choice autoencoder called like the gender one ({"image", "same_prototype",
    "opposite_prototype"} -> {"same", "opposite"}: keep all, hide gender only), for the
    held-out summary (`heldout.san_summary`)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, inputs, training=False):
        image, same = inputs["image"], inputs["same_prototype"]
        batch = tf.shape(image)[0]
        keep = tf.zeros([batch, len(HIDEABLE_ATTRIBUTES)])
        hide_gender = tf.tile(tf.constant([[1.0, 0.0, 0.0]]), [batch, 1])
        return {kind: self.model({"image": image, "same_prototype": same, "prototype": prototype,
                                  "hide": hide}, training=training)["perturbed"]
                for kind, prototype, hide in (("same", same, keep),
                                              ("opposite", inputs["opposite_prototype"],
                                               hide_gender))}


class ChoiceSanTask(PrototypeTask):
    """The choice-conditioned SAN: see the module docstring for the loss."""

    name = "san"

    def __init__(self, config, prototypes, load_models):
        """Args:
          config: the run's config, with `hide_attributes`.
          prototypes: the male and female prototypes.
          load_models: returns (choice autoencoder, gender CNN, matcher, the
            `gender_ensemble` extra gender classifiers, {attribute: its auxiliary
            classifier} for each of `config.attribute_classifiers`); `build` calls it under
            the strategy scope.
        """
        super().__init__(config, prototypes)
        if not config.hide_attributes:
            raise ValueError("ChoiceSanTask needs config.hide_attributes")
        self._load_models = load_models
        self.reports = ("loss", "gender_kept", "gender_hidden", "flip_rate_hidden",
                        *(f"{name}_{term}" for name in config.attribute_classifiers
                          for term in ("kept", "hidden")),
                        "match_kept", "match_choice", "pixel", "ssim_choice", "colour_choice")

    def build(self):
        policy = MIXED_PRECISION[self.config.mixed_precision]
        autoencoder, gender, matcher, members, classifiers = self._load_models()
        if len(members) != self.config.gender_ensemble:
            raise ValueError(f"load_models returned {len(members)} extra gender classifiers, "
                             f"but gender_ensemble is {self.config.gender_ensemble}")
        if set(classifiers) != set(self.config.attribute_classifiers):
            raise ValueError(f"load_models returned classifiers of {sorted(classifiers)}, not "
                             f"of {list(self.config.attribute_classifiers)}")
        self.model, self.gender = (with_dtype_policy(m, policy) for m in (autoencoder, gender))
        self.matcher = with_dtype_policy(
            matcher, "float32" if self.config.matcher_network == "dlib_resnet" else policy)
        self.gender_members = tuple(with_dtype_policy(m, policy) for m in members)
        self.classifiers = {name: with_dtype_policy(classifiers[name], policy)
                            for name in self.config.attribute_classifiers}
        for frozen in (self.gender, self.matcher, *self.gender_members,
                       *self.classifiers.values()):
            frozen.trainable = False
        return self.model

    def outputs(self, image, same, opposite, hide, training):
        """(X'_0, X'_c): the all-kept output and the output of choice `hide` [B, 3]."""
        keep = tf.zeros_like(hide)
        kept = self.model({"image": image, "same_prototype": same, "prototype": same,
                           "hide": keep}, training=training)["perturbed"]
        chosen = self.model({"image": image, "same_prototype": same,
                             "prototype": chosen_prototype(hide, same, opposite),
                             "hide": hide}, training=training)["perturbed"]
        return kept, chosen

    def summary_images(self, batch):
        """Originals, the all-kept outputs and the hide-everything ones, for --image_summaries."""
        same, opposite = self.prototypes_of(batch)
        hide = tf.tile(tf.constant([[float(name in self.config.hide_attributes)
                                     for name in HIDEABLE_ATTRIBUTES]]),
                       [tf.shape(batch["image"])[0], 1])
        kept, hidden = self.outputs(batch["image"], same, opposite, hide, training=False)
        return {"original": batch["image"], "kept": kept, "hide_all": hidden}

    def _hidden_term(self, logits, labels):
        """hidden_A per face: the divergence from chance, or the cross-entropy towards
        `other_value` (0 where the label is unknown)."""
        if self.config.attribute_hidden_target == "other":
            return losses.attribute_cross_entropy(
                logits, other_value(labels, tf.shape(logits)[-1]))
        return losses.divergence_from_chance(logits)

    def per_example(self, batch, step):
        config = self.config
        image, male = batch["image"], batch["male"]
        known = known_gender(male)
        male = tf.maximum(male, 0)
        same, opposite = self.prototypes_of(batch)
        # A batch may carry its choices (tests, a fixed evaluation): else drawn per face.
        hide = (tf.cast(batch["hide"], tf.float32) if "hide" in batch
                else sample_choice(config, tf.shape(image)[0]))
        kept, chosen = self.outputs(image, same, opposite, hide, training=True)
        hide_gender = hide[:, 0]

        # Gender: G_0 (the paper's CNN) first, its terms are the reported ones.
        kept_terms, choice_terms, flips = [], [], []
        for classifier in (self.gender, *self.gender_members):
            logits_kept, logits_chosen = (
                classifier(view, training=False)
                for view in san_task.classifier_views(config, (kept, chosen)))
            if config.gender_same_target == "original":
                original = classifier(image, training=False)

                def keep(logits, original=original):
                    return losses.reading_change(logits, original)
            else:
                def keep(logits):
                    return losses.gender_cross_entropy(logits, male) * known
            flipped = losses.flipped_gender_cross_entropy(logits_chosen, male) * known
            kept_terms.append(keep(logits_kept))
            choice_terms.append((hide_gender * flipped, (1.0 - hide_gender) * keep(logits_chosen)))
            flips.append(hide_gender * losses.flip_rate(logits_chosen, male))
        gender = tf.add_n([config.gender_same_weight * (kept_term + kept_choice) + hidden
                           for kept_term, (hidden, kept_choice)
                           in zip(kept_terms, choice_terms)]) / float(len(kept_terms))

        # Age group and race: hidden_A for a hidden one, the face's own reading for a kept one.
        report_attributes, attribute_terms = {}, []
        for name, classifier in self.classifiers.items():
            column = HIDEABLE_ATTRIBUTES.index(name)
            hidden_flag = hide[:, column]
            labelled = tf.cast(tf.reshape(batch[name], [-1]) >= 0, tf.float32)
            original = classifier(image, training=False)
            logits_kept, logits_chosen = (
                classifier(view, training=False)
                for view in san_task.classifier_views(config, (kept, chosen)))
            kept_change = losses.reading_change(logits_kept, original) * labelled
            hidden = hidden_flag * self._hidden_term(logits_chosen, batch[name]) * labelled
            kept_choice = ((1.0 - hidden_flag) * losses.reading_change(logits_chosen, original)
                           * labelled)
            attribute_terms.append(kept_change + hidden + kept_choice)
            report_attributes[f"{name}_kept"] = kept_change + kept_choice
            report_attributes[f"{name}_hidden"] = hidden
        attribute = (tf.add_n(attribute_terms) if attribute_terms
                     else tf.zeros_like(gender))

        likeness, terms = san_task.likeness_terms(self.matcher, config, image, kept, chosen,
                                                  step)
        total = config.gender_weight * gender + config.attribute_weight * attribute + likeness
        report = {"loss": total, "gender_kept": kept_terms[0] + choice_terms[0][1],
                  "gender_hidden": choice_terms[0][0], "flip_rate_hidden": flips[0],
                  **report_attributes, "match_kept": terms["match_kept"],
                  "match_choice": terms["match_edited"], "pixel": terms["pixel"],
                  "ssim_choice": 1.0 - terms["dissimilarity"], "colour_choice": terms["colour"]}
        return total, report
