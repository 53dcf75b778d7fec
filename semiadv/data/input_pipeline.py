"""The input pipeline: one entry point that turns a dataset spec into a batched `tf.data.Dataset`.

Every example is `{"image": float32 [H, W, C] in [0, 1], "male": int64 (0/1, -1 unknown),
"identity", "age", "age_group", "race": int64 (-1 unknown; see `attributes`)}` at the
configured size and channels, plus what the augmentation adds (see `make_dataset`) and, for
CelebA, `landmarks` [5, 2].

File and synthetic sets are index-addressable, so the training order is a pure function of
(seed, step): a resumed run reads exactly the batches an uninterrupted one would have, and each
input pipeline of a `tf.distribute.InputContext` takes its own slice of every global batch.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.data import augment as augment_lib
from semiadv.data import cache
from semiadv.data import image_ops
from semiadv.data import pipeline_options
from semiadv.data import records as records_lib
from semiadv.data import specs
from semiadv.data import tfds_sources


def _example_reader(records: records_lib.Records, config: DataConfig):
    """Returns a function index -> example, reading from memory or from disk."""
    labels = {name: tf.constant(values) for name, values in records.labels().items()}
    if records.images is not None:
        images = (records.image_tensor if records.image_tensor is not None
                  else tf.constant(records.images))
        read = lambda index: tf.gather(images, index)  # noqa: E731
    elif records.cache_file is not None:
        # Python reads the rows (TensorFlow has no ranged read); one small pread per face
        # costs far less than the step it feeds (BENCHMARKS.md).
        shape = (config.image_size, config.image_size, config.channels)
        rows = tf.constant(records.rows)

        def read(index):
            pixels = tf.numpy_function(
                functools.partial(cache.read_row, row_bytes=int(np.prod(shape))),
                [records.cache_file, rows[index]], tf.uint8, stateful=False)
            return tf.reshape(pixels, shape)
    else:
        paths = tf.constant(records.paths)
        read = lambda index: image_ops.decode_photo(  # noqa: E731
            paths[index], config.image_size, config.channels)

    def example(index):
        return {"image": tf.image.convert_image_dtype(read(index), tf.float32),
                **{name: values[index] for name, values in labels.items()}}

    return example


def training_indices(num_examples: int, seed: int, start_position: int = 0):
    """An endless stream of example indices: a fresh permutation of all examples every epoch.

    Position p of the stream is a pure function of (seed, p), so a run resumed at step s
    starts at position s * global_batch_size and reads what an uninterrupted run would.

    Returns:
      (a dataset of stream positions from `start_position` on, a function position -> index).
    """
    positions = tf.data.Dataset.range(start_position, 2**62)

    def index_at(position):
        epoch = position // num_examples
        return tf.random.experimental.index_shuffle(
            position % num_examples, seed=tf.stack([tf.constant(seed, tf.int64), epoch]),
            max_index=num_examples - 1)

    return positions, index_at


def make_dataset(config: DataConfig, split: str, *, training: bool,
                 input_context: tf.distribute.InputContext | None = None,
                 start_step: int = 0, augment: str | None = None) -> tf.data.Dataset:
    """Builds the batched pipeline of one split.

    Args:
      config: the data config; `config.batch_size` is the global batch size.
      split: train, validation or test.
      training: endless, reshuffled each epoch, whole batches only; otherwise one ordered pass.
      input_context: from `strategy.distribute_datasets_from_function`; this pipeline then
        yields per-replica batches of its own slice of every global batch.
      start_step: training resumes at this global step (skips what earlier steps read).
      augment: training only: None; "flip" (a left-right flip, reported in the example's
        `flipped` so the step can flip the prototypes too); "views" (adds two independently
        augmented `view_a` / `view_b` of the face, the matcher's positive pair).

    Returns:
      A dataset of batched example dicts.
    """
    spec = specs.parse_spec(config.dataset)
    augmenter = augment_lib.augmenter(augment)
    batch_size = (input_context.get_per_replica_batch_size(config.batch_size)
                  if input_context else config.batch_size)
    if spec.kind in specs.TFDS_KINDS:
        dataset = tfds_sources.tfds_examples(spec.kind, config, split, training=training,
                                             input_context=input_context)
        if training:
            dataset = dataset.shuffle(4096, seed=config.seed).repeat().enumerate()
            dataset = dataset.map(
                lambda position, example: augmenter(example, config.seed, position),
                num_parallel_calls=pipeline_options.PARALLEL_CALLS)
            dataset = dataset.batch(batch_size, drop_remainder=True)
            # tfds order is not index-addressable: a resumed run skips what earlier steps read.
            dataset = dataset.skip(start_step)
        else:
            dataset = dataset.batch(batch_size)
        return pipeline_options.finish(dataset)
    records = records_lib.load_records(config, split)
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    example = _example_reader(records, config)
    if training:
        if len(records) < config.batch_size:
            raise ValueError(f"the {split} split has {len(records)} examples, fewer than one "
                             f"global batch of {config.batch_size}")
        positions, index_at = training_indices(len(records), config.seed,
                                               start_step * config.batch_size)
        share = config.batch_size // pipelines
        # Pipeline k keeps positions [k*share, (k+1)*share) of every global batch: together the
        # pipelines read exactly the global batches of a single-pipeline run.
        positions = positions.filter(lambda p: (p % config.batch_size) // share == pipeline_id)

        def positioned_example(position):
            return augmenter(example(index_at(position)), config.seed, position)

        dataset = positions.map(positioned_example,
                                num_parallel_calls=pipeline_options.PARALLEL_CALLS,
                                deterministic=True)
        dataset = dataset.batch(batch_size, drop_remainder=True)
    else:
        dataset = tf.data.Dataset.range(len(records))
        if pipelines > 1:
            dataset = dataset.shard(pipelines, pipeline_id)
        dataset = dataset.map(example, num_parallel_calls=pipeline_options.PARALLEL_CALLS,
                              deterministic=True)
        dataset = dataset.batch(batch_size)
    return pipeline_options.finish(dataset)


def distribute(strategy: tf.distribute.Strategy, config: DataConfig, split: str, *,
               training: bool, start_step: int = 0, augment: str | None = None):
    """A distributed dataset of `split` for `strategy`, sharded through its input contexts."""
    return strategy.distribute_datasets_from_function(
        lambda context: make_dataset(config, split, training=training, input_context=context,
                                     start_step=start_step, augment=augment))


def read_split(config: DataConfig, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """Reads one split (or its first `limit` examples) into numpy arrays, in a fixed order."""
    dataset = make_dataset(config, split, training=False)
    if limit is not None:
        dataset = dataset.unbatch().take(limit).batch(config.batch_size)
    parts = list(dataset.as_numpy_iterator())
    if not parts:
        raise ValueError(f"the {split} split of {config.dataset} is empty")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
