"""Tests for semiadv.align.registry: detectors by name, the default, one per thread."""

import concurrent.futures
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from semiadv.align import dlib_models, folder, haar, mediapipe, registry
from semiadv.config import DataConfig
from semiadv.data.folder_source import aligned_copy
from semiadv.utils import imageio


@pytest.fixture
def automatic_default():
    """The default detector chosen afresh (as at start-up), before and after the test."""
    registry.set_default_detector(None)
    yield
    registry.set_default_detector(None)


def test_each_thread_has_its_own_detector():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        detectors = list(pool.map(lambda _: registry.default_detector(), range(8)))
    assert registry.default_detector() is registry.default_detector()
    assert len({id(d) for d in detectors} | {id(registry.default_detector())}) >= 2


def test_missing_dlib_is_named_and_haar_is_the_fallback_default(monkeypatch, caplog, automatic_default):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # and so does MediaPipe's runtime
    with pytest.raises(ImportError, match=r'pip install -e "\.\[dlib\]"'):
        registry.make_detector("dlib")
    with pytest.raises(ImportError, match="dlib"):
        registry.set_default_detector("dlib")
    with pytest.raises(ValueError, match="'cnn'"):
        registry.set_default_detector("cnn")
    with pytest.raises(ValueError, match="'cnn'"):
        registry.make_detector("cnn")
    with caplog.at_level(logging.WARNING):
        assert registry.default_detector_name() == "haar"
        assert registry.default_detector_name() == "haar"
    warnings = [r.getMessage() for r in caplog.records if "nor dlib is installed" in r.getMessage()]
    assert len(warnings) == 1 and '".[mediapipe]"' in warnings[0]  # warned once, with the remedy
    assert isinstance(registry.default_detector(), haar.HaarFaceDetector)


def test_default_is_mediapipe_then_dlib(monkeypatch, automatic_default):
    if not (mediapipe.mediapipe_available() and dlib_models.dlib_available()):
        pytest.skip("needs the [mediapipe] and [dlib] extras")
    assert registry.default_detector_name() == "mediapipe"
    registry.set_default_detector(None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[mediapipe\]"'):
        registry.set_default_detector("mediapipe")
    assert registry.default_detector_name() == "dlib"


@pytest.mark.parametrize("module, extra", [("align_main", ["--image_size=32"]),
                                           ("perturb_main", ["--export=/nonexistent"])])
def test_binaries_without_dlib_fail_in_one_line(module, extra, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "dlib.py").write_text('raise ImportError("No module named \'dlib\' (blocked by the test)")\n')
    (tmp_path / "photos").mkdir()
    # A photo, so only the detector is wrong.
    cv2.imwrite(str(tmp_path / "photos" / "face.png"), np.zeros((32, 32, 3), np.uint8))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(blocker), str(Path(__file__).resolve().parents[2])])}
    result = subprocess.run([sys.executable, "-m", f"semiadv.apps.{module}", "--detector=dlib",
                             f"--input_dir={tmp_path / 'photos'}", f"--output_dir={tmp_path / 'out'}", *extra],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    # One line of ours (TensorFlow's start-up chatter aside), no traceback.
    ours = [line for line in result.stderr.splitlines() if "dlib" in line]
    assert len(ours) == 1 and 'pip install -e ".[dlib]"' in ours[0], result.stderr
    assert ours[0].startswith(f"semiadv-{module.split('_')[0]}: error: --detector=dlib"), ours
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_alignment_cache_key_depends_on_the_detector(tmp_path):
    root = tmp_path / "people"
    imageio.write_image(root / "a" / "1.png", np.full((40, 40, 3), 128, np.uint8))
    targets = {}
    for name in registry.DETECTORS if dlib_models.dlib_available() else ("haar",):
        config = DataConfig(dataset=f"folder:{root}", image_size=16, align_cache_dir=str(tmp_path / "cache"), align_detector=name)
        targets[name] = aligned_copy(root, config)
        assert json.loads((targets[name] / folder.REPORT_NAME).read_text())["detector"] == name
    # The Haar key is the one used before detectors could be chosen: old caches stay valid.
    legacy = hashlib.sha1(f"{root.resolve()}|16".encode())
    stat = (root / "a" / "1.png").stat()
    legacy.update(f"|a/1.png:{stat.st_size}:{stat.st_mtime_ns}".encode())
    assert targets["haar"].name == f"people-16-{legacy.hexdigest()[:12]}"
    assert len(set(targets.values())) == len(targets), targets


def test_alignment_cache_key_changes_with_the_detectors_revision(tmp_path, monkeypatch):
    root = tmp_path / "people"
    imageio.write_image(root / "a" / "1.png", np.full((40, 40, 3), 128, np.uint8))
    config = DataConfig(dataset=f"folder:{root}", image_size=16,
                        align_cache_dir=str(tmp_path / "cache"), align_detector="haar")
    # Not aligning: only where the cache would be, before and after a revision bump.
    monkeypatch.setattr(folder, "align_folder", lambda *args, **kwargs: None)
    names = set()
    for name, revision in (("haar", 1), ("haar", 2), ("haar", 3)):
        monkeypatch.setitem(registry.DETECTOR_REVISIONS, name, revision)
        names.add(aligned_copy(root, config).name)
    assert len(names) == 3  # crops made by an older revision are never reused
    with pytest.raises(ValueError, match="align_detector"):
        DataConfig(align_detector="cnn")
