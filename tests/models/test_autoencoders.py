"""Tests for semiadv.models.autoencoders: the SAN autoencoder, its variants and the perturber."""

import keras
import numpy as np
import pytest

from semiadv.config import UPSAMPLINGS
from semiadv.models import autoencoders

from _model_inputs import autoencoder_inputs, perturber_inputs, randomise_combiner, random_images
from _model_inputs import SIZES_AND_CHANNELS


class TestAutoencoder:
    @pytest.mark.parametrize("size, channels", SIZES_AND_CHANNELS)
    def test_output_shapes_dtypes_and_range(self, size, channels):
        model = autoencoders.build_autoencoder(size, channels)
        outputs = model(autoencoder_inputs(size, channels))
        assert set(outputs) == {"same", "opposite"}
        for value in outputs.values():
            assert tuple(value.shape) == (2, size, size, channels)
            assert value.dtype == "float32"
            value = np.asarray(value)
            assert value.min() > 0.0 and value.max() < 1.0

    def test_layers_follow_the_paper(self):
        model = autoencoders.build_autoencoder(32, 3)
        assert model.get_layer("encoder_conv1").filters == 8
        assert model.get_layer("encoder_conv2").filters == 12
        assert model.get_layer("decoder_conv1").filters == 256
        assert model.get_layer("decoder_conv2").filters == 128
        assert isinstance(model.get_layer("encoder_pool1"), keras.layers.AveragePooling2D)
        assert model.get_layer("combiner").kernel_size == (1, 1)
        # One combiner applied twice: the same weights make both outputs.
        assert len(model.get_layer("combiner")._inbound_nodes) == 2

    def test_outputs_differ_only_through_the_prototype(self):
        model = autoencoders.build_autoencoder(16, 3)
        inputs = autoencoder_inputs(16, 3)
        outputs = model(inputs)
        assert np.abs(np.asarray(outputs["same"]) - np.asarray(outputs["opposite"])).max() > 1e-4

        inputs["opposite_prototype"] = inputs["same_prototype"]
        outputs = model(inputs)
        np.testing.assert_array_equal(outputs["same"], outputs["opposite"])

    @pytest.mark.parametrize("size", [8, 15, 18, 30, "32"])
    def test_bad_image_size_names_the_value(self, size):
        with pytest.raises(ValueError, match=repr(size).replace("'", ".")):
            autoencoders.build_autoencoder(size, 3)

    def test_bad_channels_names_the_value(self):
        with pytest.raises(ValueError, match="got 2"):
            autoencoders.build_autoencoder(16, 2)

    def test_mismatched_blocks_raise(self):
        with pytest.raises(ValueError, match="equally long"):
            autoencoders.build_autoencoder(16, 3, encoder_filters=(8,), decoder_filters=(16, 8))



class TestResidualAutoencoder:
    def test_untrained_returns_its_input(self):
        model = autoencoders.build_autoencoder(16, 3, residual=True)
        inputs = autoencoder_inputs(16, 3)
        outputs = model(inputs)
        for value in outputs.values():
            assert value.dtype == "float32"
            np.testing.assert_array_equal(value, inputs["image"])
        assert autoencoders.is_residual(model)
        assert not autoencoders.is_residual(autoencoders.build_autoencoder(16, 3))

    @pytest.mark.parametrize("channels", [1, 3])
    def test_adds_a_bounded_change_and_clips_to_unit_range(self, channels):
        model = randomise_combiner(autoencoders.build_autoencoder(32, channels, residual=True))
        inputs = autoencoder_inputs(32, channels)
        outputs = {k: np.asarray(v) for k, v in model(inputs).items()}
        image = inputs["image"]
        for value in outputs.values():
            assert value.min() >= 0.0 and value.max() <= 1.0
            # The combiner changed the face, and the clip kept its pixels in [0, 1].
            assert np.abs(value - image).mean() > 0.01
        # Some pixels hit the clip (a sigmoid output never reaches 0 or 1).
        clipped = [(v == 0.0) | (v == 1.0) for v in outputs.values()]
        assert any(c.any() for c in clipped)
        assert np.abs(outputs["same"] - outputs["opposite"]).max() > 1e-3
        inputs["opposite_prototype"] = inputs["same_prototype"]
        same_again = model(inputs)
        np.testing.assert_array_equal(same_again["same"], same_again["opposite"])

    def test_perturber_and_keras_file_keep_the_skip(self, tmp_path):
        autoencoder = randomise_combiner(
            autoencoders.build_autoencoder(16, 3, residual=True, upsampling="bilinear"))
        inputs = autoencoder_inputs(16, 3)
        expected = np.asarray(autoencoder(inputs)["opposite"])
        perturber = autoencoders.build_perturber(autoencoder)
        np.testing.assert_array_equal(perturber(perturber_inputs(inputs)), expected)
        path = tmp_path / "residual.keras"
        autoencoder.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert autoencoders.is_residual(loaded)
        assert loaded.get_layer("decoder_upsample1").interpolation == "bilinear"
        np.testing.assert_array_equal(loaded(inputs)["opposite"], expected)


class TestOwnPrototypeEncoder:
    """encoder_prototype="own": each output's encoder sees that output's prototype."""

    def test_opposite_output_decodes_the_face_with_the_opposite_prototype(self):
        shared = randomise_combiner(autoencoders.build_autoencoder(16, 3, residual=True))
        own = randomise_combiner(autoencoders.build_autoencoder(16, 3, residual=True,
                                                            encoder_prototype="own"))
        own.set_weights(shared.get_weights())  # Same layers, same weights: only wiring differs.
        assert autoencoders.encoder_prototype_of(own) == "own"
        assert autoencoders.encoder_prototype_of(shared) == "same"
        assert len(own.get_layer("encoder_conv1")._inbound_nodes) == 2
        inputs = autoencoder_inputs(16, 3)

        def decoded(model, inputs):
            """The features each output's combiner reads."""
            view = keras.Model(model.inputs, [model.get_layer(f"{kind}_combiner_concat").input[0]
                                              for kind in ("same", "opposite")])
            return [np.asarray(x) for x in view(inputs)]

        same_features, opposite_features = decoded(shared, inputs)
        # One decoded pass: X'_OP differs from X'_SM only by the combiner's mix of the two
        # prototypes, the same overlay whatever the face.
        np.testing.assert_array_equal(same_features, opposite_features)
        own_same, own_opposite = decoded(own, inputs)
        np.testing.assert_array_equal(own_same, same_features)
        assert np.abs(own_opposite - own_same).max() > 1e-3
        # The opposite pass is the same layers run on the face and the opposite prototype.
        swapped = dict(inputs, same_prototype=inputs["opposite_prototype"])
        np.testing.assert_allclose(decoded(own, swapped)[0], own_opposite, atol=1e-6)
        outputs = {k: np.asarray(v) for k, v in own(inputs).items()}
        np.testing.assert_array_equal(outputs["same"], np.asarray(shared(inputs)["same"]))
        assert np.abs(outputs["opposite"] - np.asarray(shared(inputs)["opposite"])).max() > 1e-3

    def test_perturber_and_keras_file_reproduce_the_opposite_output(self, tmp_path):
        own = randomise_combiner(autoencoders.build_autoencoder(16, 3, residual=True,
                                                            encoder_prototype="own"))
        inputs = autoencoder_inputs(16, 3)
        expected = np.asarray(own(inputs)["opposite"])
        perturber = autoencoders.build_perturber(own)
        np.testing.assert_allclose(perturber({"image": inputs["image"],
                                              "encoder_prototype": inputs["opposite_prototype"],
                                              "combiner_prototype": inputs["opposite_prototype"]}),
                                   expected, atol=1e-6)
        path = tmp_path / "own.keras"
        own.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert autoencoders.encoder_prototype_of(loaded) == "own"
        np.testing.assert_array_equal(loaded(inputs)["opposite"], expected)

    def test_bad_value_names_it(self):
        with pytest.raises(ValueError, match="encoder_prototype must be one of"):
            autoencoders.build_autoencoder(16, 3, encoder_prototype="opposite")


class TestDifferenceEncoder:
    """encoder_prototype="difference": each pass sees its prototype minus the same-gender one."""

    def test_same_output_sees_no_prototype_and_opposite_only_the_difference(self):
        model = randomise_combiner(autoencoders.build_autoencoder(16, 3, residual=True,
                                                              encoder_prototype="difference"))
        assert autoencoders.encoder_prototype_of(model) == "difference"
        inputs = autoencoder_inputs(16, 3)
        outputs = {k: np.asarray(v) for k, v in model(inputs).items()}
        assert np.abs(outputs["opposite"] - outputs["same"]).max() > 1e-3
        # Other prototypes: X'_SM is unchanged (its passes see P_SM - P_SM = 0) ...
        other = dict(inputs, same_prototype=random_images(16, 3, seed=7),
                     opposite_prototype=random_images(16, 3, seed=8))
        np.testing.assert_allclose(model(other)["same"], outputs["same"], atol=1e-6)
        # ... and the same image added to both prototypes leaves X'_OP as it was.
        shifted = {k: v + 0.3 if k != "image" else v for k, v in inputs.items()}
        np.testing.assert_allclose(model(shifted)["opposite"], outputs["opposite"], atol=1e-5)
        # X'_OP is the shared layers run on the face and P_OP - P_SM.
        difference = inputs["opposite_prototype"] - inputs["same_prototype"]
        perturber = autoencoders.build_perturber(model)
        np.testing.assert_allclose(
            perturber({"image": inputs["image"], "encoder_prototype": difference,
                       "combiner_prototype": difference}), outputs["opposite"], atol=1e-6)
        zero = np.zeros_like(difference)
        np.testing.assert_allclose(
            perturber({"image": inputs["image"], "encoder_prototype": zero,
                       "combiner_prototype": zero}), outputs["same"], atol=1e-6)

    def test_keras_file_keeps_the_wiring(self, tmp_path):
        model = randomise_combiner(autoencoders.build_autoencoder(16, 3, residual=True,
                                                              encoder_prototype="difference"))
        inputs = autoencoder_inputs(16, 3)
        path = tmp_path / "difference.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert autoencoders.encoder_prototype_of(loaded) == "difference"
        for kind in ("same", "opposite"):
            np.testing.assert_array_equal(loaded(inputs)[kind], model(inputs)[kind])


class TestMaxChange:
    def test_bounds_the_change_and_survives_the_perturber_and_keras_file(self, tmp_path):
        bounded = randomise_combiner(autoencoders.build_autoencoder(16, 3, residual=True,
                                                                max_change=0.1))
        free = randomise_combiner(autoencoders.build_autoencoder(16, 3, residual=True))
        inputs = autoencoder_inputs(16, 3)
        image = inputs["image"]
        free_change = np.abs(np.asarray(free(inputs)["opposite"]) - image).max()
        output = np.asarray(bounded(inputs)["opposite"])
        assert free_change > 0.2  # The same combiner weights change far more without a bound.
        assert 0.05 < np.abs(output - image).max() <= 0.1 + 1e-6
        assert autoencoders.max_change_of(bounded) == pytest.approx(0.1)
        assert autoencoders.max_change_of(free) == 1.0
        perturber = autoencoders.build_perturber(bounded)
        np.testing.assert_allclose(perturber(perturber_inputs(inputs)), output, atol=1e-6)
        path = tmp_path / "bounded.keras"
        bounded.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        np.testing.assert_allclose(loaded(inputs)["opposite"], output, atol=1e-6)

    def test_needs_a_residual_autoencoder_and_a_bound_in_range(self):
        with pytest.raises(ValueError, match="max_change"):
            autoencoders.build_autoencoder(16, 3, max_change=0.1)
        with pytest.raises(ValueError, match="max_change"):
            autoencoders.build_autoencoder(16, 3, residual=True, max_change=1.5)


class TestUpsampling:
    def _blockiness(self, output):
        """Mean |difference| between pixels inside a 2x2 block vs across block edges."""
        columns = np.abs(np.diff(output, axis=2))
        return columns[:, :, 0::2].mean(), columns[:, :, 1::2].mean()

    def test_nearest_leaves_2x2_blocks_and_bilinear_does_not(self):
        inputs = autoencoder_inputs(32, 3)
        # A flat prototype: the combiner's 1x1 view of it adds no texture of its own.
        for key in ("same_prototype", "opposite_prototype"):
            inputs[key] = np.full_like(inputs[key], 0.5)
        ratios = {}
        for upsampling in UPSAMPLINGS:
            keras.utils.set_random_seed(0)
            model = autoencoders.build_autoencoder(32, 3, upsampling=upsampling)
            assert model.get_layer("decoder_upsample2").interpolation == upsampling
            inside, across = self._blockiness(np.asarray(model(inputs)["same"]))
            ratios[upsampling] = inside / across
        # Nearest: neighbours inside a block are equal (only the combiner's view of the image
        # is not: here the image does not reach the combiner, so exactly 0).
        assert ratios["nearest"] == 0.0
        assert ratios["bilinear"] > 0.2

    def test_bad_upsampling_names_the_value(self):
        with pytest.raises(ValueError, match="'cubic'"):
            autoencoders.build_autoencoder(16, 3, upsampling="cubic")


class TestPerturber:
    def test_matches_autoencoder_opposite_output_exactly(self):
        autoencoder = autoencoders.build_autoencoder(16, 3)
        perturber = autoencoders.build_perturber(autoencoder)
        inputs = autoencoder_inputs(16, 3)
        perturbed = perturber(perturber_inputs(inputs))
        assert tuple(perturbed.shape) == (2, 16, 16, 3)
        assert perturbed.dtype == "float32"
        np.testing.assert_array_equal(perturbed, autoencoder(inputs)["opposite"])

    def test_shares_variables_with_the_autoencoder(self):
        autoencoder = autoencoders.build_autoencoder(16, 1)
        perturber = autoencoders.build_perturber(autoencoder)
        assert {id(v) for v in perturber.weights} == {id(v) for v in autoencoder.weights}
        assert perturber.get_layer("combiner") is autoencoder.get_layer("combiner")

        # Training the autoencoder changes the perturber: shift the combiner bias.
        inputs = perturber_inputs(autoencoder_inputs(16, 1))
        before = np.asarray(perturber(inputs))
        bias = autoencoder.get_layer("combiner").bias
        bias.assign(bias + 1.0)
        assert np.all(np.asarray(perturber(inputs)) > before)

