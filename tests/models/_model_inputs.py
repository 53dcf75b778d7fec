"""Inputs the models' tests share: random images and the autoencoder's input dicts."""

import numpy as np

WIDTH = 0.25  # Tiny filter counts keep every test fast.
SIZES_AND_CHANNELS = [(16, 1), (16, 3), (32, 1), (32, 3), (64, 1), (64, 3)]


def random_images(size, channels, batch=2, seed=0):
    return np.random.default_rng(seed).random((batch, size, size, channels), dtype=np.float32)


def autoencoder_inputs(size, channels, batch=2):
    return {
        "image": random_images(size, channels, batch, seed=1),
        "same_prototype": random_images(size, channels, batch, seed=2),
        "opposite_prototype": random_images(size, channels, batch, seed=3),
    }


def perturber_inputs(inputs):
    return {
        "image": inputs["image"],
        "encoder_prototype": inputs["same_prototype"],
        "combiner_prototype": inputs["opposite_prototype"],
    }


def randomise_combiner(autoencoder, seed=0):
    """Gives a (zero-initialised) residual combiner weights, so its outputs change the face."""
    combiner = autoencoder.get_layer("combiner")
    rng = np.random.default_rng(seed)
    kernel, bias = combiner.get_weights()
    combiner.set_weights([rng.normal(0, 0.5, kernel.shape).astype(np.float32), bias])
    return autoencoder
