"""Test session set-up: 2 logical CPU devices, so distributed code runs in every session."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Decoded-image and alignment caches of this session (and of the workers it starts) go to a
# fresh folder, not the user's ~/.cache/semiadv.
os.environ["SEMIADV_CACHE_DIR"] = tempfile.mkdtemp(prefix="semiadv-test-cache-")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its devices, i.e. before any test touches a tensor.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

from _shared_data import SHARED_FACES  # noqa: E402
from _tiny_export import export_tiny_san  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("SEMIADV_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or SEMIADV_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_faces():
    """The real faces in ../shared/faces, or a skip saying why they are missing."""
    if not SHARED_FACES.is_dir():
        pytest.skip(f"real face data not found at {SHARED_FACES} (../shared/faces)")
    return SHARED_FACES


@pytest.fixture(scope="session")
def tiny_export_16(tmp_path_factory):
    """One tiny 16x16 RGB export shared by the session's tests (exporting takes seconds)."""
    return export_tiny_san(tmp_path_factory.mktemp("exports16"), 16, seed=3)
