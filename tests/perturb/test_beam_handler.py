"""Tests of semiadv.perturb.beam.handler: RunInference over one signature of an export."""

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="apache_beam not installed (pip install -e '.[beam]')")

from semiadv.data import synthetic  # noqa: E402
from semiadv.perturb.beam.handler import SignatureModelHandler  # noqa: E402

SIZE = 16


def test_a_bad_face_does_not_fail_its_batch(tiny_export_16):
    handler = SignatureModelHandler(str(tiny_export_16), "neutral", batch_size=3)
    model = handler.load_model()
    faces = synthetic.make_faces(2, 2, SIZE, 3)["image"]
    wrong = np.zeros((SIZE + 1, SIZE, 3), np.float32)  # Cannot be stacked with the others.
    results = handler.run_inference([faces[0], wrong, faces[1]], model)
    assert [sorted(result.inference) for result in results] == [
        ["male_score", "perturbed"], ["error"], ["male_score", "perturbed"]]
    alone = handler.run_inference([faces[1]], model)[0].inference
    np.testing.assert_allclose(results[2].inference["perturbed"], alone["perturbed"], atol=1e-5)
