"""dlib's weights in the Keras graph's layout, converted once and cached.

The converted weights live under the user cache (`$SEMIADV_CACHE_DIR`, else
`~/.cache/semiadv`), in `dlib_resnet/`, keyed by the `.dat` file's SHA-256: never
downloaded, never committed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import numpy as np

from semiadv.models.dlib_resnet import graph
from semiadv.models.dlib_resnet.dat_file import (
    REINSTALL_HINT,
    DlibModelError,
    DlibNetwork,
    model_location,
    read_dat,
)
from semiadv.utils import files

# The converted weights' layout, part of the cache's file name so that a cache written for
# another layout of the graph's weights is never read. Bump it when `_converted_weights`
# or the graph's weighted layers change.
LAYOUT_VERSION = 2


def _converted_weights(network: DlibNetwork, sources: dict) -> dict:
    """Keras layer name + "/kernel" or "/bias" -> float32 array, from the file's layers."""
    weights = {}
    for name, parts in sources.items():
        if name == "descriptor":
            weights[f"{name}/kernel"] = parts[0].arrays["kernel"]
            continue
        conv, affine = parts
        # dlib's filters are [out, in, rows, cols]; Keras wants [rows, cols, in, out]. The
        # affine scale and shift fold into the conv: gamma (W x + b) + beta.
        gamma, beta = affine.arrays["gamma"], affine.arrays["beta"]
        kernel = conv.arrays["kernel"].astype(np.float64).transpose(2, 3, 1, 0) * gamma
        bias = conv.arrays["bias"].astype(np.float64) * gamma + beta
        if name == "stem_conv":
            # dlib feeds the stem (255 x - mean) / 256 for x in [0, 1]; with no padding every
            # tap reads a pixel, so W ((255 x - m) / 256) + b = (255 / 256) W x
            # + (b - sum W m / 256) exactly.
            means = np.asarray(network.means, np.float64)
            bias = bias - np.einsum("hwio,i->o", kernel, means) / 256.0
            kernel = kernel * (255.0 / 256.0)
        weights[f"{name}/kernel"] = kernel.astype(np.float32)
        weights[f"{name}/bias"] = bias.astype(np.float32)
    return weights


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(path: Optional[os.PathLike] = None) -> Path:
    """Where the converted weights of `path` (default: the packaged .dat) are cached.

    Keyed by the file's SHA-256 and the converted layout's version (`LAYOUT_VERSION`).
    """
    from semiadv.data.cache import cache_root

    path = Path(path) if path is not None else model_location()
    if not path.is_file():
        raise DlibModelError(f"{path}: dlib's model file not found: {REINSTALL_HINT}")
    return cache_root() / "dlib_resnet" / f"{_file_digest(path)[:20]}.v{LAYOUT_VERSION}.npz"


def load_converted(path: Optional[os.PathLike] = None) -> dict:
    """The Keras weights converted from dlib's .dat, from the cache or converted now.

    Args:
        path: the .dat file; `face_recognition_models`'s copy by default.

    Returns:
        Keras layer name + "/kernel" or "/bias" -> float32 array; `means` -> the input means.

    Raises:
        DlibModelError: the file is truncated or not this network.
        ImportError: `face_recognition_models` is missing and no path was given.
    """
    path = Path(path) if path is not None else model_location()
    cached = cache_path(path)
    if cached.is_file():
        with np.load(cached) as stored:
            return {key: stored[key] for key in stored.files}
    network = read_dat(path)
    graph.check_structure(network, path)
    _, sources = graph.build_graph(network, "dlib_resnet")
    weights = _converted_weights(network, sources)
    weights["means"] = np.asarray(network.means, np.float32)
    with files.atomic_path(cached, suffix=".npz") as partial:  # no half-written cache
        np.savez(partial, **weights)
    return weights
