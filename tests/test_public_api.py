"""semiadv/__init__.py: the public API resolves, lazily, without importing TensorFlow first."""

import keras
import numpy as np
import pytest

import semiadv
from _python import run_python


def test_every_public_name_resolves_to_what_its_module_defines():
    import importlib

    for name in semiadv.__all__:
        module_name, attribute = semiadv._PUBLIC[name]
        assert getattr(semiadv, name) is getattr(importlib.import_module(module_name), attribute)
    assert set(semiadv.__all__) <= set(dir(semiadv))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'build_everything'"):
        semiadv.build_everything  # noqa: B018


def test_importing_the_package_imports_no_tensorflow():
    code = ("import sys, semiadv\n"
            "assert 'tensorflow' not in sys.modules\n"
            "semiadv.parse_spec('synthetic')\n"
            "assert 'tensorflow' not in sys.modules, 'parse_spec needs no TensorFlow'\n"
            "print(len(semiadv.__all__))\n")
    assert int(run_python(code, timeout=120).stdout) == len(semiadv.__all__)


def test_the_public_api_builds_a_perturbation_from_faces_to_prototypes():
    faces = semiadv.make_faces(num_identities=4, images_per_identity=2, image_size=16,
                               channels=3, seed=1)
    images = np.asarray(faces["image"], np.float32)
    male = np.asarray(faces["male"], np.float32)
    assert 0 < male.sum() < len(male)
    prototypes = semiadv.compute_prototypes([{"image": images, "male": male}])
    assert isinstance(prototypes, semiadv.Prototypes)
    np.testing.assert_allclose(prototypes.male, images[male == 1].mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(prototypes.female, images[male == 0].mean(axis=0), atol=1e-4)
    autoencoder = semiadv.build_autoencoder(16, 3, encoder_filters=(4, 4), decoder_filters=(8, 8))
    assert isinstance(autoencoder, keras.Model)
