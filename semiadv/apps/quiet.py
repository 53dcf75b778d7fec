"""Quiet TensorFlow by default in the binaries, with a way back (`SEMIADV_VERBOSE=1`).

TensorFlow's C++ side logs from the moment it is imported: the CUDA stubs' "Could not find
cuda drivers" lines are written before absl's C++ logging is initialised, so no environment
variable hides them, and the error-level "failed call to cuInit" on CPU-only machines needs
TF_CPP_MIN_LOG_LEVEL=3. So, unless verbose, the import runs with the process's stderr file
descriptor pointed at /dev/null (Python errors raised by the import still show: they are
printed after it is restored), and TF_CPP_MIN_LOG_LEVEL defaults to 3.

The binaries also default TF_ENABLE_ONEDNN_OPTS to 1 (`prefer_onednn`): TensorFlow turns
oneDNN's CPU kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX, and on an
AVX2-only CPU its Eigen kernels run the SAN step much slower (BENCHMARKS.md §2b).
"""

from __future__ import annotations

import os
import sys

from semiadv.utils import stderr


def verbose_requested(argv, environ) -> bool:
    """True when `SEMIADV_VERBOSE=1` or `--verbose` is among the arguments."""
    return environ.get("SEMIADV_VERBOSE", "") not in ("", "0") or "--verbose" in argv


def prefer_onednn(environ) -> None:
    """Defaults TF_ENABLE_ONEDNN_OPTS to 1 in `environ` (os.environ) unless the user set it.

    Read once, when TensorFlow is imported: call this before. `TF_ENABLE_ONEDNN_OPTS=0`
    keeps the Eigen kernels (bit-for-bit the results of earlier versions on such CPUs).
    """
    environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def quiet_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow quietly (unless `verbose`) and lowers its Python loggers to errors."""
    if verbose or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr.to_devnull():
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
