"""Tests for the procedurally drawn synthetic face set."""

import os

# Quiet TensorFlow's start-up logging; must happen before keras/tensorflow is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from semiadv.data import synthetic


def _tiny_cnn(image_size: int, channels: int, num_classes: int) -> keras.Model:
    """Two conv layers and a softmax head: deliberately small, so success means the cue is easy."""
    inputs = keras.Input((image_size, image_size, channels))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="logits")(x)
    model = keras.Model(inputs, outputs, name="tiny_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _train_and_score(train_images, train_labels, test_images, test_labels, num_classes,
                     epochs) -> float:
    keras.utils.set_random_seed(0)
    model = _tiny_cnn(train_images.shape[1], train_images.shape[3], num_classes)
    model.fit(train_images, train_labels, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    predictions = model.predict(test_images, batch_size=256, verbose=0).argmax(axis=1)
    return float(np.mean(predictions == test_labels))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("image_size", [16, 32])
def test_shapes_dtypes_and_ranges(image_size, channels):
    faces = synthetic.make_faces(5, 3, image_size, channels, seed=3)

    assert faces["image"].shape == (15, image_size, image_size, channels)
    assert faces["image"].dtype == np.float32
    assert faces["male"].shape == faces["identity"].shape == (15,)
    assert faces["male"].dtype == faces["identity"].dtype == np.int64
    assert 0.0 <= faces["image"].min() and faces["image"].max() <= 1.0
    assert set(np.unique(faces["male"])) <= {0, 1}
    # Images are real pictures, not blank canvases.
    assert faces["image"].std(axis=(1, 2, 3)).min() > 0.05


def test_same_arguments_give_byte_identical_arrays():
    first = synthetic.make_faces(4, 3, 16, 3, seed=7)
    second = synthetic.make_faces(4, 3, 16, 3, seed=7)
    other_seed = synthetic.make_faces(4, 3, 16, 3, seed=8)

    for key in ("image", "male", "identity", "age", "race"):
        assert first[key].tobytes() == second[key].tobytes()
    assert not np.array_equal(first["image"], other_seed["image"])


def test_ordering_is_identity_major_and_gender_is_fixed_per_identity():
    faces = synthetic.make_faces(6, 4, 16, 1)

    np.testing.assert_array_equal(faces["identity"], np.repeat(np.arange(6), 4))
    male_per_identity = faces["male"].reshape(6, 4)
    assert (male_per_identity == male_per_identity[:, :1]).all()
    # Each image of a person differs (pose, lighting, expression, noise).
    images = faces["image"].reshape(6, 4, -1)
    assert np.abs(images[:, 0] - images[:, 1]).mean(axis=-1).min() > 0.005


def test_age_and_race_are_fixed_per_identity_and_race_shows_in_the_skin():
    from semiadv.data import attributes

    faces = synthetic.make_faces(60, 2, 32, 3, seed=0)
    for key in ("age", "race"):
        per_identity = faces[key].reshape(60, 2)
        assert (per_identity == per_identity[:, :1]).all(), key
    assert 5 <= faces["age"].min() and faces["age"].max() <= 80
    assert set(faces["race"].tolist()) == {0, 1, 2, 3, 4}
    assert set(attributes.age_group(faces["age"]).tolist()) == {0, 1, 2, 3}
    # The race code is the skin tone's band: the cheeks and nose get darker code by code.
    centre = faces["image"][:, 12:20, 10:22].mean(axis=(1, 2, 3))
    means = [centre[faces["race"] == code].mean() for code in range(5)]
    assert all(np.diff(means) < -0.05), means


def test_identity_traits_do_not_depend_on_num_identities():
    few = synthetic.make_faces(2, 3, 16, 3, seed=5)
    many = synthetic.make_faces(9, 3, 16, 3, seed=5)

    np.testing.assert_array_equal(few["image"], many["image"][:6])
    np.testing.assert_array_equal(few["male"], many["male"][:6])


def test_genders_are_roughly_balanced():
    faces = synthetic.make_faces(400, 1, 16, 1)

    assert 0.35 <= faces["male"].mean() <= 0.65


def test_gray_is_luminance_of_rgb():
    rgb = synthetic.make_faces(3, 2, 16, 3, seed=2)["image"]
    gray = synthetic.make_faces(3, 2, 16, 1, seed=2)["image"]

    luminance = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(gray[..., 0], luminance, atol=1e-3)


@pytest.mark.parametrize("argument, kwargs", [
    ("num_identities", dict(num_identities=0)),
    ("num_identities", dict(num_identities=2.5)),
    ("images_per_identity", dict(images_per_identity=0)),
    ("image_size", dict(image_size=15)),
    ("image_size", dict(image_size="32")),
    ("channels", dict(channels=2)),
    ("channels", dict(channels=4)),
    ("seed", dict(seed=-1)),
])
def test_bad_arguments_raise_value_error_naming_them(argument, kwargs):
    arguments = dict(num_identities=2, images_per_identity=2, image_size=16, channels=3)
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=argument):
        synthetic.make_faces(**arguments)


def test_gender_is_learnable_on_held_out_identities():
    train = synthetic.make_faces(300, 4, 32, 3, seed=0)
    # A different seed gives people the classifier has never seen.
    test = synthetic.make_faces(150, 2, 32, 3, seed=1)

    accuracy = _train_and_score(train["image"], train["male"], test["image"], test["male"],
                                num_classes=2, epochs=10)

    # Measured 0.94 (0.92 after 5 epochs); chance is about 0.5. Cues overlap, so not 1.0.
    assert accuracy >= 0.85


def test_identity_is_learnable_on_held_out_images():
    num_identities, train_per_identity, test_per_identity = 15, 8, 4
    faces = synthetic.make_faces(num_identities, train_per_identity + test_per_identity, 32, 3,
                                 seed=11)
    images = faces["image"].reshape(num_identities, -1, 32, 32, 3)
    labels = faces["identity"].reshape(num_identities, -1)
    train_images = images[:, :train_per_identity].reshape(-1, 32, 32, 3)
    train_labels = labels[:, :train_per_identity].reshape(-1)
    test_images = images[:, train_per_identity:].reshape(-1, 32, 32, 3)
    test_labels = labels[:, train_per_identity:].reshape(-1)

    accuracy = _train_and_score(train_images, train_labels, test_images, test_labels,
                                num_classes=num_identities, epochs=40)

    # Measured 0.97 (0.92 after 20 epochs); chance is 1/15, about 0.067.
    assert accuracy >= 0.6


def test_identity_is_recognisable_by_nearest_neighbour_on_pixels():
    num_identities, gallery_per_identity = 20, 3
    faces = synthetic.make_faces(num_identities, gallery_per_identity + 2, 32, 3, seed=4)
    images = faces["image"].reshape(num_identities, gallery_per_identity + 2, -1)
    gallery = images[:, :gallery_per_identity].reshape(-1, images.shape[-1])
    gallery_labels = np.repeat(np.arange(num_identities), gallery_per_identity)
    probes = images[:, gallery_per_identity:].reshape(-1, images.shape[-1])
    probe_labels = np.repeat(np.arange(num_identities), 2)

    distances = ((probes[:, None, :] - gallery[None, :, :]) ** 2).sum(axis=-1)
    accuracy = np.mean(gallery_labels[distances.argmin(axis=1)] == probe_labels)

    # Measured 0.68; chance is 1/20. Pose, lighting and background keep it well below 1.0.
    assert accuracy >= 0.45
