"""A linear probe on a face matcher's embeddings: what a kept identity still tells about gender.

A SAN is meant to keep the person recognisable to matchers while hiding gender from
classifiers. But a matcher's embedding of a face is itself a description of the face: if a
logistic regression reads gender off the embeddings, anyone who holds them (a face-search
service, a leaked gallery) can read gender, whatever the pixels show to a classifier.

The probe is fitted on the L2-normalised embeddings of the `train` split's ORIGINAL faces with
their true gender (`semiadv.evaluation.foreign.fit_logistic_regression`: standardised
features, full-batch gradient descent with an L2 penalty; no scikit-learn), then scored on the
test split's originals (what the matcher's embedding tells about gender at all) and on the
SAN's outputs (what it still tells once the SAN has edited the face). It is a measurement
reported beside the evaluation's tables, never a target.
"""

from __future__ import annotations

import numpy as np

from semiadv.evaluation import foreign, plugins


def unit(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as the matching scores see them."""
    embeddings = np.asarray(embeddings, np.float64)
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


class LinearProbe:
    """Logistic regression from unit embeddings [N, D] to the probability of male [N]."""

    def __init__(self, parameters: dict):
        self.parameters = {key: np.asarray(value) for key, value in parameters.items()}

    @classmethod
    def fit(cls, embeddings: np.ndarray, male: np.ndarray, steps: int,
            l2: float) -> "LinearProbe":
        """Fits the probe on embeddings [N, D] of faces with 0/1 labels [N]."""
        return cls(foreign.fit_logistic_regression(unit(embeddings), np.asarray(male), steps,
                                                   l2))

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        x = (unit(embeddings) - self.parameters["mean"]) / self.parameters["std"]
        logits = x @ self.parameters["weights"] + self.parameters["bias"]
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


class ProbedMatcher:
    """A matcher followed by its linear probe, behind the gender-classifier interface, so the
    evaluation scores it like any classifier (`plugins.apply` resizes faces to the matcher's
    `image_size`)."""

    kind = "gender"

    def __init__(self, matcher, probe: LinearProbe, name: str):
        self.matcher, self.probe, self.name = matcher, probe, name
        self.image_size = getattr(matcher, "image_size", None)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.probe(np.asarray(self.matcher(images)))


def fit_on_matcher(matcher, images: np.ndarray, male: np.ndarray, steps: int, l2: float,
                   name: str, batch_size: int = 128) -> ProbedMatcher:
    """Embeds `images` (faces of known gender, labels `male` 0/1) with `matcher` and fits a
    probe on them.

    Raises:
      ValueError: naming the matcher when the faces are not of both genders.
    """
    if len(np.unique(male)) < 2:
        raise ValueError(f"cannot fit a linear probe on {name!r}: its {len(male)} training "
                         "faces are not of both genders")
    embeddings = plugins.apply(matcher, images, batch_size)
    return ProbedMatcher(matcher, LinearProbe.fit(embeddings, male, steps, l2), name)
