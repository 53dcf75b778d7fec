"""dlib's chip inside our crops: one fixed similarity, and the layer that warps by it.

dlib's matcher reads a 150x150 chip that dlib cuts from each photo by its own 5-point
landmarks. Our crops are already aligned (`semiadv.align`), so one fixed similarity,
`CHIP_IN_CROP`, maps every crop to dlib's chip well enough: `FixedAffineWarp` applies it
inside the graph, differentiably.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from semiadv.align import dlib_models
from semiadv.models.dlib_resnet.graph import INPUT_SIZE

# dlib's chip in our crop: normalised chip coordinates v in [0, 1]^2 (pixel centres at
# (j + 0.5) / 150) map to normalised crop coordinates u = CHIP_IN_CROP @ [v, 1] (centres at
# (i + 0.5) / S). Measured with `measure_chip_transform` on 3,000 UTKFace crops (every 7th
# of ../shared/faces/utkface in name order, 200x200, framed like `semiadv.align`'s canonical
# eye points) where dlib's frontal detector found exactly one face: dlib's 5-point landmarks,
# `get_face_chip_details(size=150, padding=0.25)`, the median of each similarity parameter
# (RESULTS.md, "dlib's ResNet in Keras and the fixed chip warp");
# tests/models/dlib_resnet/test_chip.py::test_chip_transform_constants_remeasure re-measures
# them (slow). The chip is a little larger than the crop, so its rim reads zeros, as dlib's
# own chips of these crops do.
CHIP_IN_CROP = np.array([[1.08820, -0.00196, -0.04338],
                         [0.00196, 1.08820, -0.03873]])


def chip_to_crop_matrix(details, crop_width: int, crop_height: int) -> np.ndarray:
    """The [2, 3] similarity from dlib chip normalised coordinates to crop normalised ones.

    Args:
        details: a `dlib.chip_details` (from `dlib.get_face_chip_details`).
        crop_width, crop_height: the crop's size in pixels.
    """
    rect = details.rect
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    # dlib's get_mapping_to_chip: the rect's corners, rotated by `angle` about its centre,
    # go to the chip's corner pixels.
    corners = np.array([(rect.left(), rect.top()), (rect.right(), rect.top()),
                        (rect.right(), rect.bottom())])
    image_points = (corners - centre) @ rotation.T + centre
    last_row, last_col = details.rows - 1, details.cols - 1
    chip_points = np.array([(0, 0), (last_col, 0), (last_col, last_row)], np.float64)
    # Solve image = A @ [chip, 1] (pixel indices), then move both to normalised coordinates.
    design = np.hstack([chip_points, np.ones((3, 1))])
    pixels = np.linalg.solve(design, image_points).T  # [2, 3]
    to_chip = np.array([[details.cols, 0, -0.5], [0, details.rows, -0.5], [0, 0, 1]])
    from_crop = np.array([[1 / crop_width, 0, 0.5 / crop_width],
                          [0, 1 / crop_height, 0.5 / crop_height]])
    return from_crop @ np.vstack([pixels, [0, 0, 1]]) @ to_chip


def measure_chip_transform(crops, detector=None, landmarks=None) -> tuple[np.ndarray, int]:
    """Measures where dlib's 5-point chip sits in face crops, as one similarity.

    Args:
        crops: iterable of uint8 RGB crops [H, W, 3] framed like ours (eyes at the canonical
            points of `semiadv.align`).
        detector, landmarks: dlib's frontal face detector and 5-point shape predictor (loaded
            from dlib and face_recognition_models by default).

    Returns:
        ([2, 3] chip-to-crop similarity in normalised coordinates, the median of each of its
        four parameters over the crops; the number of crops with exactly one detected face,
        the only ones used).

    Raises:
        ImportError: dlib or face_recognition_models is missing (the message says how to
            install them).
        ValueError: dlib found exactly one face in none of the crops.
    """
    dlib = dlib_models.require_dlib("measure_chip_transform")
    detector = detector or dlib.get_frontal_face_detector()
    if landmarks is None:
        landmarks = dlib.shape_predictor(dlib_models.shape_predictor_path("5"))
    parameters = []
    for crop in crops:
        crop = np.ascontiguousarray(crop)
        faces = detector(crop, 0)
        if len(faces) != 1:
            continue
        details = dlib.get_face_chip_details(landmarks(crop, faces[0]), size=INPUT_SIZE,
                                             padding=0.25)
        matrix = chip_to_crop_matrix(details, crop.shape[1], crop.shape[0])
        parameters.append([(matrix[0, 0] + matrix[1, 1]) / 2, (matrix[1, 0] - matrix[0, 1]) / 2,
                           matrix[0, 2], matrix[1, 2]])
    if not parameters:
        raise ValueError("measure_chip_transform: dlib found a single face in none of the crops")
    scale_cos, scale_sin, shift_x, shift_y = np.median(np.asarray(parameters), axis=0)
    return (np.array([[scale_cos, -scale_sin, shift_x], [scale_sin, scale_cos, shift_y]]),
            len(parameters))


@keras.saving.register_keras_serializable(package="semiadv")
class FixedAffineWarp(keras.layers.Layer):
    """Bilinear resampling of [N, H, W, C] images through one fixed affine map.

    Output pixel centres, in normalised coordinates v in [0, 1]^2, sample the input at
    `matrix @ [v, 1]` (normalised too, so the layer fits any input size); samples outside the
    input read 0, as dlib's chips do. It is a fixed sparse linear map built from gathers, so
    the gradient is its exact transpose and reaches the input. The images are made
    pixel-major ([H*W, N*C]) so that each of the 4 corners is one row gather, whose gradient
    is one segment sum: faster than gathering along the pixel axis of [N, H*W, C], and unlike
    a sparse-dense matmul XLA compiles it (BENCHMARKS.md §2b).
    """

    def __init__(self, output_size: int, matrix, **kwargs):
        super().__init__(**kwargs)
        self.output_size = int(output_size)
        self.matrix = [[float(value) for value in row] for row in np.asarray(matrix)]
        if np.asarray(self.matrix).shape != (2, 3):
            raise ValueError(f"FixedAffineWarp: matrix must be [2, 3], got {matrix}")

    def build(self, input_shape):
        height, width = int(input_shape[1]), int(input_shape[2])
        size = self.output_size
        centres = (np.arange(size) + 0.5) / size
        v_x, v_y = np.meshgrid(centres, centres)
        grid = np.stack([v_x.ravel(), v_y.ravel(), np.ones(size * size)])
        u_x, u_y = np.asarray(self.matrix) @ grid
        x, y = u_x * width - 0.5, u_y * height - 0.5
        x0, y0 = np.floor(x), np.floor(y)
        indices, weights = [], []
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            cx, cy = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - cx)) * (1 - np.abs(y - cy))
            inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
            indices.append(np.clip(cy, 0, height - 1) * width + np.clip(cx, 0, width - 1))
            weights.append(np.where(inside, weight, 0.0))
        self._indices = np.stack(indices).astype(np.int32)  # [4, P]
        self._weights = np.stack(weights).astype(np.float32)[..., None]  # [4, P, 1]
        self.built = True

    def call(self, images):
        height, width, channels = images.shape[1:]
        size = self.output_size
        # Pixels first, [H*W, N*C]: every image and channel is a column of each gather.
        pixels = tf.reshape(tf.transpose(tf.cast(images, tf.float32), [1, 2, 0, 3]),
                            [height * width, -1])
        sampled = tf.add_n([tf.gather(pixels, self._indices[corner]) * self._weights[corner]
                            for corner in range(4)])
        sampled = tf.transpose(tf.reshape(sampled, [size, size, -1, channels]), [2, 0, 1, 3])
        return tf.cast(sampled, images.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size, self.output_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size, "matrix": self.matrix}

