"""A tiny random 16x16 SAN for the export tests, and its outputs computed by hand."""

import keras
import numpy as np
import tensorflow as tf

from semiadv.export import serving_model
from semiadv.models import autoencoders, gender_classifiers
from semiadv.prototypes.average import Prototypes
from semiadv.train import dtype_policies

SIZE, CHANNELS = 16, 3
ATOL = 1e-5


def random_prototypes(rng):
    male = rng.random((SIZE, SIZE, CHANNELS), dtype=np.float32)
    female = rng.random((SIZE, SIZE, CHANNELS), dtype=np.float32)
    neutral = (0.4 * male + 0.6 * female).astype(np.float32)
    return Prototypes(male, female, neutral, 0.4, (2, 3))


def make_san():
    """A tiny random SAN: autoencoder, gender CNN, prototypes and some images."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    autoencoder = autoencoders.build_autoencoder(
        SIZE, CHANNELS, encoder_filters=(4, 4), decoder_filters=(8, 8))
    gender = gender_classifiers.build_gender_classifier(SIZE, CHANNELS, width=0.125)
    images = rng.random((6, SIZE, SIZE, CHANNELS), dtype=np.float32)
    # Spread and centre the logits so that half the images are called male: the hard label
    # then differs between images.
    logits = gender.get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 50.0, bias * 50.0])
    margin = np.diff(gender(images, training=False).numpy(), axis=1)[:, 0]
    logits.set_weights([kernel * 50.0, bias * 50.0 - [0.0, np.median(margin)]])
    prototypes = random_prototypes(rng)
    return {"autoencoder": autoencoder, "gender": gender, "prototypes": prototypes,
            "images": images, "perturber": autoencoders.build_perturber(autoencoder),
            "model": serving_model.build_serving_perturber(autoencoder, gender, prototypes)}


def male_score(san, images):
    logits = san["gender"](images, training=False)
    return tf.nn.softmax(logits)[:, 1].numpy()


def by_hand(san, images, male, kind):
    """The SAN output computed with the eager autoencoder and the prototypes."""
    p = san["prototypes"]
    y = np.asarray(male, np.float32).reshape(-1, 1, 1, 1)
    same = y * p.male + (1 - y) * p.female
    combiner = {"same": same, "opposite": (1 - y) * p.male + y * p.female,
                "neutral": np.broadcast_to(p.neutral, same.shape)}[kind]
    return san["perturber"]({"image": images, "encoder_prototype": same.astype(np.float32),
                      "combiner_prototype": combiner.astype(np.float32)}).numpy()


def bfloat16_san():
    """A residual SAN whose networks were built (as trained) under mixed_bfloat16."""
    keras.utils.set_random_seed(4)
    with dtype_policies.dtype_policy("bfloat16"):
        autoencoder = autoencoders.build_autoencoder(SIZE, CHANNELS, encoder_filters=(4, 4),
                                                     decoder_filters=(8, 8), residual=True,
                                                     upsampling="bilinear")
        gender = gender_classifiers.build_gender_classifier(SIZE, CHANNELS, width=0.125)
    combiner = autoencoder.get_layer("combiner")
    kernel, bias = combiner.get_weights()
    combiner.set_weights([np.random.default_rng(5).normal(0, 0.3, kernel.shape)
                          .astype(np.float32), bias])
    return autoencoder, gender


def layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from layers(layer)
