"""Speed options: XLA-compiled steps, mixed bfloat16 training and export, pipeline teardown."""

import json
import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.data import input_pipeline
from semiadv.data import records as records_lib
from semiadv.export import writer
from semiadv.models import autoencoders, gender_classifiers
from semiadv.train import dtype_policies
from semiadv.train import trainer
from semiadv.config import DataConfig, TrainConfig
from test_trainer import SIZE, san_config, fixed_models, fixed_prototypes, fixed_san_task


def _one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


# Slow (~11 s); --jit_compile is off by default (BENCHMARKS.md: XLA is slower on CPU).
@pytest.mark.slow
def test_jit_compiled_step_equals_plain_step(tmp_path):
    config = san_config(tmp_path)
    weights = fixed_models(config)
    results = {}
    for jit in (False, True):
        run_config = san_config(tmp_path, jit_compile=jit)
        task = fixed_san_task(run_config, weights)
        results[jit] = trainer.train(task, run_config.san, run_config, _one_device(),
                                     tmp_path / f"jit_{jit}")
    plain, jitted = results[False], results[True]
    assert [s for s, _ in plain.history] == [s for s, _ in jitted.history] == [2, 4]
    for (_, values_plain), (_, values_jit) in zip(plain.history, jitted.history):
        for key in values_plain:
            np.testing.assert_allclose(values_jit[key], values_plain[key], rtol=1e-3, atol=1e-5,
                                       err_msg=key)
    for w_plain, w_jit in zip(plain.model.get_weights(), jitted.model.get_weights()):
        np.testing.assert_allclose(w_jit, w_plain, rtol=1e-3, atol=1e-5)


def test_eager_loop_equals_compiled_loop(tmp_path):
    """The benchmarks' eager baseline runs the very same step as training."""
    config = san_config(tmp_path)
    weights = fixed_models(config)
    finals = []
    for compiled in (True, False):
        strategy = _one_device()
        task = fixed_san_task(config, weights)
        with strategy.scope():
            model = task.build()
            optimizer = keras.optimizers.Adam(1e-2)
            optimizer.build(model.trainable_variables)
            metrics = {name: keras.metrics.Mean(name=name) for name in task.reports}
        loop = trainer.make_train_loop(task, config, strategy, optimizer,
                                       model.trainable_variables, metrics, compiled=compiled)
        iterator = iter(input_pipeline.distribute(strategy, config.data, "train", training=True,
                                        augment=task.augment))
        loop(iterator, tf.constant(3))
        assert int(optimizer.iterations) == 3
        finals.append((model.get_weights(), float(metrics["loss"].result())))
    (weights_compiled, loss_compiled), (weights_eager, loss_eager) = finals
    np.testing.assert_allclose(loss_eager, loss_compiled, rtol=1e-4)
    for a, b in zip(weights_compiled, weights_eager):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_with_dtype_policy_keeps_weights_and_float32_outputs():
    keras.utils.set_random_seed(1)
    model = gender_classifiers.build_gender_classifier(SIZE, 3, width=0.125)
    mixed = dtype_policies.with_dtype_policy(model, "mixed_bfloat16")
    assert mixed is not model
    assert mixed.get_layer("block1_conv").compute_dtype == "bfloat16"
    assert mixed.get_layer("block1_conv").variable_dtype == "float32"
    assert mixed.get_layer("logits").compute_dtype == "float32"
    for a, b in zip(model.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(a, b)
    images = np.random.default_rng(0).uniform(0, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    logits = mixed(images)
    assert logits.dtype == tf.float32
    # bfloat16 keeps ~3 significant digits: same logits up to that rounding.
    np.testing.assert_allclose(logits, model(images), rtol=0.05, atol=0.02)
    assert dtype_policies.with_dtype_policy(mixed, "mixed_bfloat16") is mixed
    back = dtype_policies.with_dtype_policy(mixed, "float32")
    assert back.get_layer("block1_conv").compute_dtype == "float32"


def test_residual_skip_stays_float32_under_mixed_bfloat16():
    """The face passes the skip connection unrounded: bf16 would cost it ~3 digits."""
    autoencoder = autoencoders.build_autoencoder(SIZE, 3, (4, 4), (8, 8), residual=True)
    mixed = dtype_policies.with_dtype_policy(autoencoder, "mixed_bfloat16")
    assert mixed.get_layer("decoder_conv1").compute_dtype == "bfloat16"
    for name in ("combiner", "same_residual", "same_clip", "opposite_residual"):
        assert mixed.get_layer(name).compute_dtype == "float32", name
    image = np.random.default_rng(0).uniform(0, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    outputs = mixed({"image": image, "same_prototype": image, "opposite_prototype": image})
    np.testing.assert_array_equal(outputs["opposite"], image)


def test_mixed_bfloat16_san_trains_close_to_float32_and_exports_float32(tmp_path):
    weights = fixed_models(san_config(tmp_path))
    runs = {}
    for precision in ("none", "bfloat16"):
        config = san_config(tmp_path, mixed_precision=precision)
        task = fixed_san_task(config, weights)
        runs[precision] = (trainer.train(task, config.san, config, _one_device(),
                                         tmp_path / precision), task)
    assert keras.config.dtype_policy().name == "float32"  # Restored after the stage.
    (fp32, _), (mixed, task) = runs["none"], runs["bfloat16"]
    assert task.model.get_layer("encoder_conv1").compute_dtype == "bfloat16"
    assert task.gender.get_layer("block1_conv").compute_dtype == "bfloat16"
    assert task.matcher.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert all(w.dtype == np.float32 for w in mixed.model.get_weights())
    for (_, values_fp32), (_, values_mixed) in zip(fp32.history, mixed.history):
        for key in ("loss", "pixel", "gender_same", "gender_opposite"):
            assert np.isfinite(values_mixed[key])
            np.testing.assert_allclose(values_mixed[key], values_fp32[key], rtol=0.05,
                                       atol=0.01, err_msg=key)
    # The trained model saved under the mixed policy reloads, and exports float32 faces.
    loaded = keras.models.load_model(tmp_path / "bfloat16" / trainer.FINAL_MODEL, safe_mode=True)
    assert loaded.get_layer("encoder_conv1").compute_dtype == "bfloat16"
    version_dir = writer.export_san(loaded, task.gender, fixed_prototypes(), tmp_path / "exports",
                                    "mixed")
    signature = tf.saved_model.load(str(version_dir)).signatures["opposite"]
    images = np.random.default_rng(0).uniform(0, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    outputs = signature(image=tf.constant(images))
    assert outputs["perturbed"].dtype == tf.float32
    assert outputs["perturbed"].shape == (3, SIZE, SIZE, 3)
    assert np.isfinite(outputs["perturbed"].numpy()).all()
    assert outputs["male_score"].dtype == tf.float32


def test_config_rejects_unknown_precision():
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="float16")


def test_training_pipeline_has_no_autotune_thread_to_wait_for():
    """Deleting an autotuned iterator waited up to a minute for tf.data's model thread."""
    config = DataConfig(dataset="synthetic", image_size=SIZE, batch_size=8,
                        synthetic_identities=12, synthetic_images_per_identity=4)
    for training in (True, False):
        dataset = input_pipeline.make_dataset(config, "train", training=training, augment=None)
        assert dataset.options().autotune.enabled is False
        batch = next(iter(dataset))
        assert batch["image"].shape == (8, SIZE, SIZE, 3)


def test_decoded_images_are_held_once_and_read_only():
    config = DataConfig(dataset="synthetic", image_size=SIZE, batch_size=8,
                        synthetic_identities=12, synthetic_images_per_identity=4, seed=5)
    records = records_lib.load_records(config, "train")
    assert records.image_tensor is not None
    assert not records.images.flags.writeable
    np.testing.assert_array_equal(records.images, records.image_tensor.numpy())
    batch = next(iter(input_pipeline.make_dataset(config, "train", training=False)))
    np.testing.assert_allclose(batch["image"], records.images[:8].astype(np.float32) / 255,
                               atol=1e-6)


@pytest.mark.parametrize("flag, native, expected", [
    (None, True, "none"), (None, False, "none"), ("--mixed_precision=auto", True, "bfloat16"),
    ("--mixed_precision=auto", False, "none"), ("--mixed_precision=none", True, "none"),
    ("--mixed_precision=bfloat16", False, "bfloat16")])
def test_mixed_precision_flag_defaults_to_float32_and_auto_follows_the_hardware(
        monkeypatch, flag, native, expected):
    from absl import flags

    from semiadv.apps import train_flags

    monkeypatch.setattr(train_flags, "bfloat16_is_native", lambda: native)
    try:
        flags.FLAGS(["test", "--jit_compile"] + ([flag] if flag else []))
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.mixed_precision == expected
    assert config.jit_compile is True


@pytest.mark.parametrize("recorded, flag, expected", [
    ("none", "--mixed_precision=auto", "none"), ("bfloat16", "--mixed_precision=auto", "bfloat16"),
    ("none", "--mixed_precision=bfloat16", "bfloat16"), (None, "--mixed_precision=auto", "bfloat16")])
def test_auto_precision_keeps_an_existing_work_dirs_precision(monkeypatch, tmp_path, recorded,
                                                             flag, expected):
    # A work dir trained where bfloat16 was not native is rerun on a machine where it is:
    # "auto" must not become a changed setting that refuses its finished stages.
    from absl import flags

    from semiadv.apps import train_flags

    monkeypatch.setattr(train_flags, "bfloat16_is_native", lambda: True)
    workdir = tmp_path / "w"
    if recorded is not None:
        workdir.mkdir()
        (workdir / "config.json").write_text(json.dumps({"mixed_precision": recorded}))
    try:
        flags.FLAGS(["test", flag, f"--workdir={workdir}"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.mixed_precision == expected
