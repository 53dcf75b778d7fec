"""Which layers of the networks stay float32 under a mixed-precision dtype policy."""

from semiadv.models.autoencoders import RESIDUAL_SUFFIXES


def computes_in_float32(layer_name):
    """Whether a layer of these networks must stay float32 under a mixed-precision policy.

    The images the losses and the export read come out of them: the autoencoder's combiner
    and residual layers, the classifiers' logits and the matchers' embeddings. Under a
    mixed-precision policy Keras casts a layer's inputs to its compute dtype, so a bfloat16
    skip connection would pass the face in bfloat16.
    """
    return (layer_name in ("combiner", "logits", "embedding", "l2_normalize")
            or layer_name.endswith(RESIDUAL_SUFFIXES))
