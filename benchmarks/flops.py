"""Analytic FLOP counts of the SAN networks, from their Keras Conv2D and Dense layers.

A multiply-add counts 2 FLOPs; biases, activations, pooling, the losses and non-conv
resampling (dlib's fixed chip warp, the match jitter's shift and blur) are left out (each
under 1-2% of the step here). Shared layers (the autoencoder's combiner) count once per call;
a model nested in another (dlib's ResNet behind its chip warp) counts once per call of it.
"""

from __future__ import annotations

import math


def forward_flops(model) -> dict[str, int]:
    """FLOPs of one example's forward pass, per layer name (conv and dense only).

    Every call of a layer counts: pass freshly built models (not layers shared with others).
    A nested model's layers are named `<nested model>/<layer>` and count once per call of the
    nested model inside `model`.
    """
    import keras

    counts = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            calls = len(layer._inbound_nodes)
            for name, value in forward_flops(layer).items():
                key = f"{layer.name}/{name}"
                counts[key] = counts.get(key, 0) + calls * value
        elif isinstance(layer, keras.layers.Conv2D):
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


def matcher_passes(match_same: bool = True, match_opposite: bool = True) -> int:
    """Forward-pass equivalents the frozen matcher runs per image in one SAN step.

    Forward on X (no gradient: X is data), then forward + input-gradient backward (the
    backward of a conv or dense layer w.r.t. its input has its forward's multiply-adds) on
    each output in a match term: X'_SM if `match_same`, X'_OP if `match_opposite`
    (`SanTask.per_example` runs the matcher on no other view). 1 + 2 x terms: 5 with both
    (the paper's), 3 with X'_OP only (the dlib recipe's `--nomatch_same`).
    """
    return 1 + 2 * (int(match_same) + int(match_opposite))


def san_step_flops(autoencoder, gender, matcher, match_same: bool = True,
                   match_opposite: bool = True, gender_same_target: str = "label") -> dict:
    """FLOPs per image of one SAN training step (what `SanTask.per_example` + the update run).

    autoencoder: forward, plus a backward of 2x forward (input and weight gradients) except
      the first conv's input gradient (the image needs none): 3F - F_first.
    gender CNN (frozen): forward and input-gradient backward (1x) on X'_SM and X'_OP: 4F
      (also with `gender_same_weight=0`: the zero-weighted term's backward still runs), and
      with `gender_same_target="original"` a forward on X: 5F.
    matcher (frozen): `matcher_passes(match_same, match_opposite)` x F: 5F with both match
      terms (forward on X, forward + input gradient on X'_SM and X'_OP), 3F with X'_OP only.
      A nested matcher (dlib's ResNet behind its chip warp) counts all its Conv2D/Dense.
    """
    ae = forward_flops(autoencoder)
    first = ae.get("encoder_conv1", 0)
    f_ae, f_g, f_m = sum(ae.values()), sum(forward_flops(gender).values()), \
        sum(forward_flops(matcher).values())
    gender_passes = 5 if gender_same_target == "original" else 4
    parts = {"autoencoder": 3 * f_ae - first, "gender": gender_passes * f_g,
             "matcher": matcher_passes(match_same, match_opposite) * f_m}
    return {"forward": {"autoencoder": f_ae, "gender": f_g, "matcher": f_m},
            "step_per_image": parts, "step_per_image_total": int(math.fsum(parts.values()))}
