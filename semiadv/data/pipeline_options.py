"""The fixed tf.data parallelism and prefetch every pipeline of the package uses.

Fixed values instead of tf.data.AUTOTUNE: an autotuned iterator runs a model thread whose
sleep doubles up to 60 s, and deleting the iterator waits for it, which stalls every stage
boundary of a long run (BENCHMARKS.md). Decoding is the only costly map: one call per core
keeps the cores busy, and a few batches of prefetch keep the step from waiting
(benchmarks/input_pipeline.py).
"""

from __future__ import annotations

import tensorflow as tf

from semiadv.utils import parallel

PARALLEL_CALLS = parallel.available_cores()
PREFETCH_BATCHES = 4


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning model thread off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """A batched pipeline's last steps: prefetch, then autotuning off."""
    return without_autotune(dataset.prefetch(PREFETCH_BATCHES))
