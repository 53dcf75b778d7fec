"""Attackers, reported beside the evaluation's tables: what someone who tries harder learns.

The evaluation's classifiers were trained on unedited faces and never saw the SAN. Two
attackers go further, and the report says what each means for a user. Neither is a target and
neither enters the verdict: a SAN is not meant to beat them, and a user should know that.

- the *adaptive attacker* (`semiadv.evaluation.adaptive`): a gender classifier trained on the
  SAN's OP outputs of the `train` split with their true gender (it knows the SAN), scored on
  the test split's OP, SM, NT and originals; beside it the same classifier family trained on
  the originals of the same faces (what the attacker has without the SAN);
- the *linear probes* (`semiadv.evaluation.linear_probe`): a logistic regression from each
  matcher's embeddings of the `train` split's originals to gender, scored on the test split:
  what the identity a matcher keeps still tells about gender. Each probe carries its
  matcher's relation to the SAN (seen, sibling, foreign).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from semiadv.config import DataConfig
from semiadv.evaluation import adaptive, evaluators, linear_probe, metrics, sampling
from semiadv.evaluation.foreign import ForeignConfig
from semiadv.evaluation.gender_section import gender_section

# The conditions the attackers are scored on: the SAN's own, not the baselines. The probes
# skip NT: a plug-in matcher (ONNX, dlib) spends ~20-50 ms a face re-aligning it.
CONDITIONS = ("original", "same", "neutral", "opposite")
PROBE_CONDITIONS = ("original", "same", "opposite")
# Relation of the adaptive attacker: neither seen, sibling nor foreign, it learnt from the SAN.
ADAPTIVE = "adaptive"


@dataclasses.dataclass(frozen=True)
class AttackerConfig:
    """Which attackers to run and how.

    Attributes:
      adaptive: train (or reuse) the adaptive attacker and its reference.
      adaptive_family: "hog" (HOG + logistic regression at the foreign HOG's size) or "cnn"
        (the foreign separable CNN, strong augmentation, at the data's input size).
      adaptive_steps: training steps (Adam steps of the CNN, gradient steps of the regression).
      adaptive_examples: `train` faces it learns from (spread over the split, `read_spread`).
      probe: fit a linear probe on every matcher of the evaluation.
      probe_examples: `train` faces the probes learn from (spread over the split).
      probe_test_examples: test faces they are scored on (at most; spread over the
        evaluation's test faces).
      probe_steps: gradient-descent steps of each probe (full batch).
      probe_l2: the probes' L2 penalty.
      seed: the adaptive CNN's weight-initialisation and augmentation seed.
    """

    adaptive: bool = True
    # HOG: cheaper than the augmented CNN and, on UTKFace at 64x64, the better reader of
    # gender even against 4x the CNN's steps (RESULTS.md).
    adaptive_family: str = "hog"
    adaptive_steps: int = 300
    adaptive_examples: int = 2000
    probe: bool = True
    # The probe on the shared MobileFaceNet kept improving up to 2000 training faces
    # (RESULTS.md); scoring needs fewer, and each face costs a plug-in matcher a re-alignment.
    probe_examples: int = 2000
    probe_test_examples: int = 1000
    probe_steps: int = 300
    probe_l2: float = 1e-3
    seed: int = 2468

    def __post_init__(self):
        if self.adaptive_family not in adaptive.FAMILIES:
            raise ValueError(f"adaptive attacker family {self.adaptive_family!r}: use one of "
                             f"{adaptive.FAMILIES}")
        for name in ("adaptive_steps", "probe_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("adaptive_examples", "probe_examples", "probe_test_examples"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2 (both genders), got "
                                 f"{getattr(self, name)}")
        if self.probe_l2 < 0:
            raise ValueError(f"probe_l2 must not be negative, got {self.probe_l2}")

    @property
    def enabled(self) -> bool:
        """Whether any attacker runs."""
        return self.adaptive or self.probe


read_spread = sampling.read_spread
spread = sampling.spread


class _TrainingFaces:
    """`count` faces of known gender spread over the `train` split (`sampling.read_spread`), each
    count read once, on first use: the faces depend on the count alone, as the attackers'
    cache keys do."""

    def __init__(self, data_config: DataConfig):
        self.data_config, self._faces = data_config, {}

    def __call__(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        if count not in self._faces:
            split = read_spread(self.data_config, adaptive.SPLIT, count)
            known = metrics.known_gender(split["male"])
            self._faces[count] = split["image"][known], split["male"][known].astype(np.float32)
        return self._faces[count]


def _both_genders(male: np.ndarray) -> bool:
    return len(np.unique(male)) == 2


def adaptive_section(config: AttackerConfig, training: _TrainingFaces, perturber,
                     export_key: str, data_config: DataConfig, foreign_config: ForeignConfig,
                     eval_workdir: str, images: dict, male: np.ndarray, batch_size: int) -> dict:
    """The adaptive attacker and its reference, trained (or reused) and scored.

    Args:
      config: the attackers' settings.
      training: the `train` faces.
      perturber: called as `perturber(images, male, batch_size, kinds=("opposite",))`, returns
        {"opposite": outputs}.
      export_key: the export's identity (`adaptive.export_digest`), keys the attacker's cache.
      data_config, foreign_config, eval_workdir: the evaluation's.
      images: {condition: test faces} for `CONDITIONS`.
      male: the test faces' labels (-1 unknown).
      batch_size: faces per call.
    """
    originals, labels = training(config.adaptive_examples)
    if not _both_genders(labels):
        raise ValueError(f"the {adaptive.SPLIT} split of {data_config.dataset} has "
                         f"{len(labels)} faces of known gender, not of both genders: no "
                         "adaptive attacker (--noadaptive_attacker)")

    def faces(condition):
        def read():  # Perturbing costs time: only when the attacker is not cached.
            if condition == "original":
                return originals, labels
            logging.info("attackers: perturbing %d training faces (OP)", len(originals))
            return perturber(originals, labels, batch_size, kinds=("opposite",))["opposite"], \
                labels
        return read

    classifiers, trained_on = [], {}
    for condition in adaptive.CONDITIONS:
        shaped = adaptive.settings(config.adaptive_family, condition, config.adaptive_steps,
                                   config.adaptive_examples, config.seed, data_config,
                                   foreign_config, export_key)
        classifier = adaptive.load_or_train(shaped, data_config, eval_workdir, faces(condition))
        classifiers.append((classifier.name, classifier))
        trained_on[classifier.name] = condition
    scored, _ = gender_section(classifiers, images, male, batch_size)
    for name, entry in scored.items():
        entry["trained_on"] = trained_on[name]
        entry["relation"] = ADAPTIVE if trained_on[name] == "opposite" else "sibling"
    names = {condition: name for name, condition in trained_on.items()}
    return {"family": config.adaptive_family, "split": adaptive.SPLIT,
            "training_faces": int(len(labels)),
            "export_digest": export_key, "attacker": names["opposite"],
            "reference": names["original"], "classifiers": scored}


def probe_section(config: AttackerConfig, training: _TrainingFaces, matchers, images: dict,
                  male: np.ndarray, batch_size: int) -> dict:
    """A linear probe per (name, matcher), fitted on the `train` originals and scored on
    `config.probe_test_examples` of the test faces (`spread`) in `PROBE_CONDITIONS`."""
    originals, labels = training(config.probe_examples)
    if not _both_genders(labels):
        raise ValueError(f"the {adaptive.SPLIT} split has {len(labels)} faces of known gender, "
                         "not of both genders: no linear probes (--nolinear_probe)")
    probed, names = [], {}
    for name, matcher in matchers:
        logging.info("attackers: linear probe on %s (%d training faces)", name, len(labels))
        probe = linear_probe.fit_on_matcher(matcher, originals, labels, config.probe_steps,
                                            config.probe_l2, f"linear probe on {name}",
                                            batch_size)
        probed.append((probe.name, probe))
        names[probe.name] = (name, matcher)
    count = config.probe_test_examples
    scored, _ = gender_section(
        probed, {condition: spread(images[condition], count) for condition in PROBE_CONDITIONS},
        spread(male, count), batch_size)
    for probe_name, entry in scored.items():
        name, matcher = names[probe_name]
        entry.update(matcher=name, origin=evaluators.origin(matcher),
                     seen=evaluators.is_seen(matcher), relation=evaluators.relation(matcher))
    return {"split": adaptive.SPLIT, "training_faces": int(len(labels)),
            "test_faces": int(metrics.known_gender(spread(male, count)).sum()),
            "steps": config.probe_steps, "l2": config.probe_l2, "probes": scored}


def attackers_section(config: AttackerConfig, perturber, data_config: DataConfig,
                      foreign_config: ForeignConfig, eval_workdir: str, images: dict,
                      male: np.ndarray, matchers, batch_size: int) -> dict:
    """{"adaptive": ..., "linear_probes": ...} for the enabled attackers ({} if none).

    Args:
      perturber: a `semiadv.evaluation.perturber.Perturber` (its `path` keys the cache).
      images: {condition: test faces}; the attackers read `CONDITIONS` of it.
      matchers: (name, matcher) pairs of the evaluation, each probed.
    """
    if not config.adaptive and not (config.probe and matchers):
        return {}
    images = {condition: images[condition] for condition in CONDITIONS}
    training = _TrainingFaces(data_config)
    _, labels = training(config.adaptive_examples if config.adaptive else config.probe_examples)
    if not _both_genders(labels):  # A dataset without gender labels: nothing to learn.
        note = (f"no attackers: the {adaptive.SPLIT} split of {data_config.dataset} has "
                f"{len(labels)} faces of known gender, not of both genders")
        logging.warning("%s", note)
        return {"skipped": note}
    section = {}
    if config.adaptive:
        section["adaptive"] = adaptive_section(
            config, training, perturber, adaptive.export_digest(perturber.path), data_config,
            foreign_config, eval_workdir, images, male, batch_size)
    if config.probe and matchers:
        section["linear_probes"] = probe_section(config, training, matchers, images, male,
                                                 batch_size)
    return section
