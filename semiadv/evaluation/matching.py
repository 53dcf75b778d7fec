"""The matching part of an evaluation: the identity set, its pairs, and each matcher's ROC.

Probe = an output (or an original), gallery = the original of ANOTHER photo of the same
person, or of the same photo when the set labels no identities (which the outputs say).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from semiadv.config import DataConfig
from semiadv.evaluation import evaluators, metrics, plugins, sampling
from semiadv.evaluation.config import EvaluationConfig

FMRS = (0.01, 0.001)
SIMILARITY = "negative squared distance between L2-normalised embeddings (= 2 cos - 2)"


@dataclasses.dataclass
class MatchingSet:
    """The photos the matchers are tested on, their perturbed versions and the pairs.

    Attributes:
      dataset: the dataset spec the photos come from.
      images: {condition: probes [N, H, W, C]}; "original" is also the gallery.
      genuine, impostor: [P, 2] (probe, gallery) index pairs.
      protocol: "identity" or "same_photo".
      note: what the protocol means, for the report.
    """

    dataset: str
    images: dict
    genuine: np.ndarray
    impostor: np.ndarray
    protocol: str
    note: str


def read_test_split(config: DataConfig, limit: int | None) -> dict:
    """About `limit` examples (None: all) of the test split of `config`, spread over it and
    sampled by person where it has identities (`sampling.read_spread`): the first ones are
    not a sample (UTKFace's are ordered by age)."""
    logging.info("reading the test split of %s", config.dataset)
    return sampling.read_spread(config, "test", limit, keep_identities=True)


has_identity_pairs = sampling.has_identity_pairs


def matching_set(config: EvaluationConfig, test: dict, outputs: dict, perturber) -> MatchingSet:
    """Picks the identity set: --identity_dataset, else the test set's own identities, else
    the same photo as gallery (said in the note).

    Args:
      config: the evaluation's config.
      test: the gender test split (`read_test_split`).
      outputs: {condition: the export's outputs for `test["image"]`}.
      perturber: a `perturber.Perturber`, run on the identity dataset's photos if there is one.
    """
    dataset, identity = config.data.dataset, test["identity"]
    images = {"original": test["image"], **outputs}
    if config.identity_dataset:
        identity_data = dataclasses.replace(config.data, dataset=config.identity_dataset)
        other = read_test_split(identity_data, config.max_examples)
        logging.info("perturbing %d faces of %s for matching", len(other["image"]),
                     config.identity_dataset)
        images = {"original": other["image"],
                  **perturber(other["image"], other["male"], config.batch_size)}
        dataset, identity = config.identity_dataset, other["identity"]
        if not has_identity_pairs(identity):
            raise ValueError(f"--identity_dataset={config.identity_dataset}: its test split has "
                             "no person with two photos; it needs identities")
    if has_identity_pairs(identity):
        protocol = "identity"
        note = ("Probe: a perturbed photo; gallery: the originals of the OTHER photos of the "
                "same person (genuine) and of other people (impostors).")
    else:
        protocol, identity = "same_photo", None
        note = ("No identities in this set: the gallery mate of each perturbed probe is the "
                "original of the SAME photo, an easier test than the paper's; the original-vs-"
                "original row is trivially 100%. Use --identity_dataset for identity matching.")
    genuine, impostor = metrics.make_pairs(identity, len(images["original"]),
                                           config.impostors_per_probe, config.seed)
    if not len(genuine) or not len(impostor):
        raise ValueError(f"{dataset}: no genuine or no impostor pairs in its test split")
    return MatchingSet(dataset, images, genuine, impostor, protocol, note)


def pair_scores(embed, probes: np.ndarray, gallery_embeddings: np.ndarray, pairs: MatchingSet):
    """(genuine, impostor) similarities of `probes`, embedded by `embed`, to the gallery."""
    probe_embeddings = embed(probes)
    return (metrics.similarity(probe_embeddings, gallery_embeddings, pairs.genuine),
            metrics.similarity(probe_embeddings, gallery_embeddings, pairs.impostor))


def matcher_conditions(matcher, pairs: MatchingSet, images: dict, batch_size: int):
    """({condition: metrics}, {condition: ROC}) of one matcher on `images[condition]` probes."""
    def embed(faces):
        return plugins.apply(matcher, faces, batch_size)

    gallery = embed(pairs.images["original"])
    entry, curves = {}, {}
    for condition, probes in images.items():
        genuine, impostor = pair_scores(embed, probes, gallery, pairs)
        entry[condition] = metrics.matching_metrics(genuine, impostor, FMRS)
        curves[condition] = metrics.roc_curve(genuine, impostor)
    return entry, curves


def matching_section(matchers, pairs: MatchingSet, batch_size: int):
    """({name: origin, seen and metrics per condition}, {name: ROC per condition}) of every
    (name, matcher) pair on the conditions of `pairs`."""
    section, curves = {}, {}
    for name, matcher in matchers:
        logging.info("matching: %s", name)
        entry, curve = matcher_conditions(matcher, pairs, pairs.images, batch_size)
        section[name] = {"origin": evaluators.origin(matcher), "seen": evaluators.is_seen(matcher),
                         "relation": evaluators.relation(matcher),
                         "conditions": entry}
        curves[name] = curve
    return section, curves
