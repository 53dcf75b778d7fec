"""A tiny random SAN export for tests that need one on disk."""


def tiny_san_parts(size, channels=3, seed=0, hide_attributes=()):
    """(autoencoder, gender CNN, prototypes) of a tiny random SAN; the same seed gives the
    same networks. With `hide_attributes` the autoencoder is a choice autoencoder."""
    import keras
    import numpy as np

    from semiadv.models import autoencoders, choice_autoencoder, gender_classifiers
    from semiadv.prototypes.average import Prototypes

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    build = (choice_autoencoder.build_choice_autoencoder if hide_attributes
             else autoencoders.build_autoencoder)
    autoencoder = build(size, channels, encoder_filters=(4, 4), decoder_filters=(8, 8))
    gender = gender_classifiers.build_gender_classifier(size, channels, width=0.125)
    male, female = (rng.random((size, size, channels), dtype=np.float32) for _ in range(2))
    prototypes = Prototypes(male, female, (0.5 * male + 0.5 * female).astype(np.float32),
                            0.5, (1, 1))
    return autoencoder, gender, prototypes


def export_tiny_san(directory, size, channels=3, seed=0, hide_attributes=(), edit_strength=1.0):
    """Exports a tiny random SAN (`tiny_san_parts`) for tests.

    With `hide_attributes` (e.g. ("gender", "race")) a choice-conditioned SAN's export.
    """
    from semiadv.export import writer

    return writer.export_san(*tiny_san_parts(size, channels, seed, hide_attributes),
                             directory, "san", hide_attributes=hide_attributes,
                             edit_strength=edit_strength)
