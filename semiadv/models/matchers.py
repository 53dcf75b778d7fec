"""Face matchers: a VGG-Face-style embedding network and an unseen residual one.

Each maps images [B, H, W, C] in [0, 1] to unit-norm float32 embeddings [B, embedding_dim].

- `build_matcher`: a VGG-Face-style (Parkhi et al., BMVC 2015) network, the SAN's auxiliary
  matcher, trained with a triplet loss.
- `build_independent_matcher`: a residual network of another architecture, used as an
  "unseen" matcher in evaluation.
"""

import keras

from semiadv.models import blocks

_VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_VGG_DENSE_UNITS = 4096


def _embedding_head(x, embedding_dim):
    """A linear embedding, L2-normalised; float32 under any dtype policy (losses read it)."""
    x = keras.layers.Dense(embedding_dim, dtype="float32", name="embedding")(x)
    return keras.layers.UnitNormalization(axis=-1, dtype="float32", name="l2_normalize")(x)


def build_matcher(image_size, channels, embedding_dim=128, width=1.0, name="matcher"):
    """Builds a VGG-Face-style face matcher producing L2-normalised embeddings.

    Blocks of conv3x3 + ReLU (64, 128, 256, 512, 512 filters; 2, 2, 3, 3, 3 convolutions),
    each followed by 2x2 max pooling, then two ReLU dense layers (4096 units at width 1) and
    a linear embedding layer, as in Parkhi et al. (2015) trained with a triplet loss. Blocks
    are dropped from the end for small images so the feature map never shrinks below 2x2.

    Args:
        image_size: Height and width of the square images, >= 16.
        channels: 1 or 3.
        embedding_dim: Size of the embedding.
        width: Multiplier of every filter and dense unit count (at least 4 are kept).
        name: Model name.

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to unit-norm float32 embeddings
        [B, embedding_dim].
    """
    image = blocks.checked_image_input(image_size, channels, width)
    x = image
    specs = blocks.fitting_blocks(image_size, _VGG_BLOCKS)
    for block, (filters, num_convs) in enumerate(specs, start=1):
        for conv in range(1, num_convs + 1):
            x = keras.layers.Conv2D(
                blocks.scaled(filters, width),
                3,
                padding="same",
                activation="relu",
                name=f"block{block}_conv{conv}",
            )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    # Flatten (not global pooling) like VGG: where a feature sits on the face matters.
    x = keras.layers.Flatten(name="flatten")(x)
    units = blocks.scaled(_VGG_DENSE_UNITS, width)
    x = keras.layers.Dense(units, activation="relu", name="fc6")(x)
    x = keras.layers.Dense(units, activation="relu", name="fc7")(x)
    return keras.Model(inputs=image, outputs=_embedding_head(x, embedding_dim), name=name)


def build_independent_matcher(
    image_size, channels, embedding_dim=128, width=1.0, name="independent_matcher"
):
    """Builds a residual face matcher, architecturally unlike the VGG-style one.

    Two residual blocks per stride-2 stage, global average pooling, a linear embedding layer
    and L2 normalisation.

    Args:
        image_size: Height and width of the square images, >= 16.
        channels: 1 or 3.
        embedding_dim: Size of the embedding.
        width: Multiplier of every filter count (at least 4 are kept).
        name: Model name.

    Returns:
        A `keras.Model` mapping images [B, H, W, C] to unit-norm float32 embeddings
        [B, embedding_dim].
    """
    image = blocks.checked_image_input(image_size, channels, width)
    x = blocks.residual_trunk(image, image_size, width, blocks_per_stage=2)
    return keras.Model(inputs=image, outputs=_embedding_head(x, embedding_dim), name=name)
