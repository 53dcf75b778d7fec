"""Test session set-up: 2 logical CPU devices, so distributed code runs in every session."""

import os
import tempfile
from pathlib import Path

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

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"


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


def export_tiny_san(directory, size, channels=3, seed=0):
    """Exports a tiny random SAN (autoencoder, gender CNN, random prototypes) for tests."""
    import keras
    import numpy as np

    from semiadv.export import writer
    from semiadv.models import autoencoders, gender_classifiers
    from semiadv.prototypes.average import Prototypes

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    autoencoder = autoencoders.build_autoencoder(size, channels, encoder_filters=(4, 4),
                                                 decoder_filters=(8, 8))
    gender = gender_classifiers.build_gender_classifier(size, channels, width=0.125)
    male, female = (rng.random((size, size, channels), dtype=np.float32) for _ in range(2))
    prototypes = Prototypes(male, female, (0.5 * male + 0.5 * female).astype(np.float32),
                            0.5, (1, 1))
    return writer.export_san(autoencoder, gender, prototypes, directory, "san")


@pytest.fixture(scope="session")
def tiny_export_16(tmp_path_factory):
    """One tiny 16x16 RGB export shared by the session's tests (exporting takes seconds)."""
    return export_tiny_san(tmp_path_factory.mktemp("exports16"), 16, seed=3)
