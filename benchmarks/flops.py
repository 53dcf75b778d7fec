"""Analytic FLOP counts of the SAN networks, from their Keras Conv2D and Dense layers.

A multiply-add counts 2 FLOPs; biases, activations, pooling and the losses are left out
(well under 1% here). Shared layers (the autoencoder's combiner) count once per call.
"""

from __future__ import annotations

import math


def forward_flops(model) -> dict[str, int]:
    """FLOPs of one example's forward pass, per layer name (conv and dense only).

    Every call of a layer counts: pass freshly built models (not layers shared with others).
    """
    import keras

    counts = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            for node in layer._inbound_nodes:
                inputs = node.input_tensors[0]
                out = node.output_tensors[0]
                cin = inputs.shape[-1]
                h, w, cout = out.shape[1:]
                counts[layer.name] = counts.get(layer.name, 0) + 2 * h * w * cout * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            for node in layer._inbound_nodes:
                units_in = node.input_tensors[0].shape[-1]
                counts[layer.name] = counts.get(layer.name, 0) + 2 * units_in * layer.units
    return counts


def san_step_flops(autoencoder, gender, matcher) -> dict:
    """FLOPs per image of one SAN training step (what `SanTask.per_example` + the update run).

    autoencoder: forward, plus a backward of 2x forward (input and weight gradients) except
      the first conv's input gradient (the image needs none): 3F - F_first.
    gender CNN (frozen): forward and input-gradient backward (1x) on X'_SM and X'_OP: 4F.
    matcher (frozen): forward on X (no gradient), forward + input-gradient backward on X'_SM
      and X'_OP: 5F. This assumes the default `match_opposite` (M(X'_OP) in the loss);
      without it M(X'_OP) is only reported and its backward is pruned: 4F.
    """
    ae = forward_flops(autoencoder)
    first = ae.get("encoder_conv1", 0)
    f_ae, f_g, f_m = sum(ae.values()), sum(forward_flops(gender).values()), \
        sum(forward_flops(matcher).values())
    parts = {"autoencoder": 3 * f_ae - first, "gender": 4 * f_g,
             "matcher": 5 * f_m}
    return {"forward": {"autoencoder": f_ae, "gender": f_g, "matcher": f_m},
            "step_per_image": parts, "step_per_image_total": int(math.fsum(parts.values()))}
