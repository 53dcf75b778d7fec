"""Fixtures of the export tests: one tiny random SAN and its export, per test module."""

import pytest
import tensorflow as tf

from _tiny_san import make_san
from semiadv.export import writer


@pytest.fixture(scope="module")
def san():
    """A tiny random SAN: autoencoder, gender CNN, prototypes and some images."""
    return make_san()


@pytest.fixture(scope="module")
def exported(san, tmp_path_factory):
    """`san` exported: its base path, version dir and the loaded SavedModel."""
    base = tmp_path_factory.mktemp("exports")
    version_dir = writer.export_san(san["autoencoder"], san["gender"], san["prototypes"],
                                    base, "san")
    return {"base": base, "dir": version_dir, "loaded": tf.saved_model.load(str(version_dir))}
