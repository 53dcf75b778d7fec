"""Tests for semiadv.models.matchers: unit-norm embeddings and depth from the image size."""

import numpy as np
import pytest

from semiadv.models import matchers

from _model_inputs import SIZES_AND_CHANNELS, WIDTH, random_images

MATCHER_BUILDERS = [matchers.build_matcher, matchers.build_independent_matcher]


class TestMatchers:
    @pytest.mark.parametrize("builder", MATCHER_BUILDERS)
    @pytest.mark.parametrize("size, channels", SIZES_AND_CHANNELS)
    def test_unit_norm_embeddings(self, builder, size, channels):
        model = builder(size, channels, embedding_dim=16, width=WIDTH)
        embeddings = model(random_images(size, channels, batch=3))
        assert tuple(embeddings.shape) == (3, 16)
        assert embeddings.dtype == "float32"
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)

    def test_vgg_blocks_follow_image_size(self):
        small = matchers.build_matcher(16, 3, width=WIDTH)
        large = matchers.build_matcher(64, 3, width=WIDTH)
        assert "block3_conv3" in {x.name for x in small.layers}
        assert "block4_conv1" not in {x.name for x in small.layers}
        assert "block5_conv3" in {x.name for x in large.layers}

    @pytest.mark.parametrize("builder", MATCHER_BUILDERS)
    def test_bad_image_size_names_the_value(self, builder):
        with pytest.raises(ValueError, match="10"):
            builder(10, 3)

