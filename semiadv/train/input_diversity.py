"""Random differentiable transforms of the faces the SAN's gender term reads (input diversity).

A gender edit learnt against a classifier that reads pixel-exact images can live in patterns
that any resize, blur, JPEG save or colour correction on the way to another classifier
destroys. Reading X'_SM and X'_OP through random transforms of those kinds (Xie et al. 2019,
"Improving transferability of adversarial examples with input diversity"), drawn afresh per
example, asks the SAN for an edit that survives them: the transforms other classifiers' inputs
go through. Every transform passes gradients to the image:

- colour jitter: brightness, contrast and saturation;
- random resize-and-crop: a random window of the face (up to `0.2 x strength` of the side
  cut off, anywhere) resized back to the full size, bilinear;
- Gaussian blur, sigma up to `strength x side / 40` pixels (1.6 at 64x64);
- JPEG-like quantisation: 8x8 block DCT of Y, Cb and Cr, coefficients divided by the JPEG
  tables at a random quality in [100 - 70 x strength, 100] and rounded, with the gradient of
  the identity through the rounding (straight-through estimator).

Resize-and-crop and blur are linear and separable: one matrix per axis and example, two
batched matmuls, as in `semiadv.models.dlib_resnet.jittered_views`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Largest share of the side a crop cuts off, brightness shift, contrast and saturation
# change, and blur sigma per pixel of side, at strength 1.
_CROP, _BRIGHTNESS, _CONTRAST, _SATURATION, _BLUR_PER_SIDE = 0.2, 0.1, 0.2, 0.3, 1.0 / 40.0
_LOWEST_QUALITY = 30.0  # JPEG quality at strength 1 (libjpeg's scale; 75 is its default).
_BLOCK = 8
# The JPEG standard's (Annex K) luminance and chrominance quantisation tables, quality 50.
_LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
_CHROMA_TABLE = np.full((8, 8), 99, np.float32)
_CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99],
                         [47, 66, 99, 99]]
# RGB <-> YCbCr (JFIF), on [0, 255] values with the chroma centred on 0.
_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]], np.float32)


def _dct_matrix(size: int = _BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix: coefficients = D @ block @ D^T."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    matrix = np.sqrt(2.0 / size) * np.cos(np.pi * (2 * n + 1) * k / (2 * size))
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def straight_through_round(values):
    """round(values) forward, the identity's gradient backward."""
    return values + tf.stop_gradient(tf.round(values) - values)


def colour_jitter(images, strength: float, seed=None):
    """Random brightness, contrast and (RGB only) saturation change of each example."""
    count = tf.shape(images)[0]

    def draw(limit):
        return tf.random.uniform([count, 1, 1, 1], -limit * strength, limit * strength,
                                 seed=seed)

    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * (1.0 + draw(_CONTRAST)) + mean + draw(_BRIGHTNESS)
    if images.shape[-1] == 3:
        grey = tf.reduce_mean(images, axis=-1, keepdims=True)
        images = grey + (images - grey) * (1.0 + draw(_SATURATION))
    return tf.clip_by_value(images, 0.0, 1.0)


def _resample_matrix(start, kept, size):
    """[N, size, size] bilinear weights: output pixel i reads the window [start, start +
    kept) of the side (shares of it), resized to `size` pixels; edges repeated."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size  # [size]
    source = (start + centres[None, :] * kept) * size - 0.5  # [N, size] input pixel coords
    source = tf.clip_by_value(source, 0.0, size - 1.0)
    pixels = tf.range(size, dtype=tf.float32)
    return tf.nn.relu(1.0 - tf.abs(source[:, :, None] - pixels[None, None, :]))


def _blur_matrix(sigma, size):
    """[N, size, size] Gaussian blur of sigma [N, 1] pixels, rows renormalised at edges."""
    pixels = tf.range(size, dtype=tf.float32)
    distance = pixels[:, None] - pixels[None, :]
    weights = tf.exp(-0.5 * tf.square(distance[None] / tf.maximum(sigma, 1e-3)[:, :, None]))
    return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)


def resize_crop_blur(images, strength: float, seed=None):
    """A random window of each face resized back to its size, then blurred (random sigma)."""
    count = tf.shape(images)[0]
    height, width, channels = images.shape[1:]
    kept = 1.0 - tf.random.uniform([count, 1], 0.0, _CROP * strength, seed=seed)
    start_y = tf.random.uniform([count, 1], 0.0, 1.0, seed=seed) * (1.0 - kept)
    start_x = tf.random.uniform([count, 1], 0.0, 1.0, seed=seed) * (1.0 - kept)
    sigma = tf.random.uniform([count, 1], 0.0, _BLUR_PER_SIDE * strength * height, seed=seed)
    mix_y = tf.matmul(_blur_matrix(sigma, height), _resample_matrix(start_y, kept, height))
    mix_x = tf.matmul(_blur_matrix(sigma, width), _resample_matrix(start_x, kept, width))
    moved = tf.matmul(mix_y, tf.reshape(images, [-1, height, width * channels]))
    moved = tf.transpose(tf.reshape(moved, [-1, height, width, channels]), [0, 2, 1, 3])
    moved = tf.matmul(mix_x, tf.reshape(moved, [-1, width, height * channels]))
    return tf.transpose(tf.reshape(moved, [-1, width, height, channels]), [0, 2, 1, 3])


def jpeg_like(images, quality):
    """JPEG's lossy step on [N, H, W, C] images in [0, 1] at per-example `quality` [N].

    8x8 block DCT of Y (and Cb, Cr for RGB; no chroma subsampling), coefficients divided by
    the standard tables scaled to the quality (libjpeg's scaling, without its integer
    flooring) and rounded straight-through. Sides that are not multiples of 8 are padded
    (edges repeated) and cropped back.
    """
    height, width, channels = images.shape[1:]
    pad_y, pad_x = -height % _BLOCK, -width % _BLOCK
    values = images * 255.0
    if channels == 3:
        values = tf.einsum("nhwc,dc->nhwd", values, _TO_YCBCR) - [128.0, 0.0, 0.0]
        tables = np.stack([_LUMA_TABLE, _CHROMA_TABLE, _CHROMA_TABLE], axis=-1)
    else:
        values = values - 128.0
        tables = _LUMA_TABLE[..., None]
    if pad_y or pad_x:
        values = tf.pad(values, [[0, 0], [0, pad_y], [0, pad_x], [0, 0]], mode="SYMMETRIC")
    rows, columns = (height + pad_y) // _BLOCK, (width + pad_x) // _BLOCK
    blocks = tf.reshape(values, [-1, rows, _BLOCK, columns, _BLOCK, channels])
    dct = _dct_matrix()
    coefficients = tf.einsum("ui,nricjk,vj->nrucvk", dct, blocks, dct)
    quality = tf.reshape(tf.cast(quality, tf.float32), [-1, 1, 1, 1, 1, 1])
    scale = tf.where(quality < 50.0, 5000.0 / quality, 200.0 - 2.0 * quality) / 100.0
    # [8, C] tables on the (u, v) axes of the blocks: [1, 1, 8, 1, 8, C].
    step = tf.maximum(tables[None, None, :, None, :, :] * scale, 1.0)
    coefficients = straight_through_round(coefficients / step) * step
    blocks = tf.einsum("ui,nrucvk,vj->nricjk", dct, coefficients, dct)
    values = tf.reshape(blocks, [-1, rows * _BLOCK, columns * _BLOCK, channels])
    values = values[:, :height, :width, :]
    if channels == 3:
        values = tf.einsum("nhwd,cd->nhwc", values + [128.0, 0.0, 0.0],
                           np.linalg.inv(_TO_YCBCR).astype(np.float32))
    else:
        values = values + 128.0
    return tf.clip_by_value(values / 255.0, 0.0, 1.0)


def diverse_view(images, strength: float, seed=None):
    """`images` [N, H, W, C] in [0, 1] through colour jitter, resize-and-crop with blur and
    JPEG-like quantisation, each drawn afresh for each example, up to `strength` in (0, 1].

    Differentiable everywhere (the rounding straight-through); computes in float32 and
    returns the input's dtype.
    """
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    dtype = images.dtype
    images = tf.cast(images, tf.float32)
    images = colour_jitter(images, strength, seed)
    images = resize_crop_blur(images, strength, seed)
    quality = tf.random.uniform(tf.shape(images)[:1], 100.0 - (100.0 - _LOWEST_QUALITY)
                                * strength, 100.0, seed=seed)
    return tf.cast(jpeg_like(images, quality), dtype)
