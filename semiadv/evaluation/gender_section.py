"""The gender part of an evaluation: each classifier's error rate, AUC and ROC per condition."""

from __future__ import annotations

import numpy as np
from absl import logging

from semiadv.evaluation import evaluators, metrics, plugins


def gender_section(classifiers, images: dict, male: np.ndarray, batch_size: int):
    """(metrics per classifier, ROC curves per classifier) over the examples of known gender.

    Args:
      classifiers: (name, gender classifier) pairs.
      images: {condition: faces [N, H, W, C]}.
      male: [N] 0/1 labels, -1 where unknown.
      batch_size: faces per classifier call.
    """
    section, curves = {}, {}
    known = metrics.known_gender(male)
    for name, classifier in classifiers:
        logging.info("gender: %s", name)
        entry, curve = {}, {}
        for condition, faces in images.items():
            probability = plugins.apply(classifier, faces[known], batch_size)
            labels = male[known]
            entry[condition] = {"error_rate": metrics.error_rate(probability, labels),
                                "auc": metrics.gender_auc(probability, labels)}
            curve[condition] = metrics.roc_curve(probability[labels == 1],
                                                 probability[labels == 0])
        section[name] = {"origin": evaluators.origin(classifier),
                         "seen": evaluators.is_seen(classifier),
                         "relation": evaluators.relation(classifier), "conditions": entry}
        curves[name] = curve
    return section, curves
