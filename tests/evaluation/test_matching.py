"""The matching set: identities, or the same photo as gallery."""

import numpy as np

from semiadv.evaluation import matching
from semiadv.evaluation.config import EvaluationConfig


def test_without_identities_the_gallery_is_the_same_photo_and_says_so(tmp_path):
    config = EvaluationConfig(export="unused", output_dir=str(tmp_path))
    faces = np.zeros((4, 16, 16, 3), np.float32)
    test = {"image": faces, "identity": -np.ones(4, np.int64), "male": np.array([0, 1, 0, 1])}
    chosen = matching.matching_set(config, test, {"opposite": faces}, perturber=None)
    assert chosen.protocol == "same_photo" and "SAME photo" in chosen.note
    assert all(p == g for p, g in chosen.genuine)
