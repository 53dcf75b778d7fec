"""Tests for semiadv.models.gender_classifiers: shapes, depth, widths and architectures."""

import keras
import pytest

from semiadv.models import gender_classifiers

from _model_inputs import SIZES_AND_CHANNELS, WIDTH, random_images


BUILDERS = [gender_classifiers.build_gender_classifier,
            gender_classifiers.build_vgg_gender_classifier,
            gender_classifiers.build_independent_gender_classifier]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("size, channels", SIZES_AND_CHANNELS)
def test_float32_logits_of_two_classes(builder, size, channels):
    model = builder(size, channels, width=WIDTH)
    logits = model(random_images(size, channels))
    assert tuple(logits.shape) == (2, 2)
    assert logits.dtype == "float32"


class TestGenderClassifier:
    def test_depth_grows_with_image_size(self):
        def num_pools(size):
            model = gender_classifiers.build_gender_classifier(size, 1, width=WIDTH)
            return sum(isinstance(x, keras.layers.MaxPooling2D) for x in model.layers)

        assert [num_pools(s) for s in (16, 32, 64, 224)] == [3, 4, 5, 5]

    def test_first_block_is_5x5_and_width_scales_filters(self):
        model = gender_classifiers.build_gender_classifier(64, 3, width=1.0)
        assert model.get_layer("block1_conv").kernel_size == (5, 5)
        assert model.get_layer("block1_conv").filters == 32
        assert model.get_layer("top_conv").filters == 512
        small = gender_classifiers.build_gender_classifier(64, 3, width=0.1)
        assert small.get_layer("block1_conv").filters == 4  # 3.2 -> the minimum of 4
        assert small.get_layer("top_conv").filters == 51

    def test_bad_image_size_names_the_value(self):
        with pytest.raises(ValueError, match="12"):
            gender_classifiers.build_gender_classifier(12, 3)


class TestIndependentGenderClassifier:
    def test_architecture_differs_from_the_papers(self):
        model = gender_classifiers.build_independent_gender_classifier(32, 3, width=WIDTH)
        kinds = {type(x) for x in model.layers}
        assert keras.layers.BatchNormalization in kinds
        assert keras.layers.Add in kinds
        assert keras.layers.MaxPooling2D not in kinds


class TestVggGenderClassifier:
    def test_architecture_differs_from_the_papers(self):
        model = gender_classifiers.build_vgg_gender_classifier(32, 3, width=WIDTH)
        kinds = {type(x) for x in model.layers}
        assert {keras.layers.BatchNormalization, keras.layers.Flatten} <= kinds
        assert keras.layers.LeakyReLU not in kinds


@pytest.mark.parametrize("builder", BUILDERS)
def test_bad_width_names_the_value(builder):
    with pytest.raises(ValueError, match="width must be > 0, got 0"):
        builder(16, 3, width=0)
