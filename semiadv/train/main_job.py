"""The main job: every stage that has no finished artefact in the work dir, in order.

prototypes -> gender CNN (-> age_group, race: the auxiliary classifiers of a choice-
conditioned SAN, `hide_attributes`) (-> gender_1..gender_K, the Ensemble SAN's extra
classifiers when `gender_ensemble` = K > 0, then one classifier per link 2..L of a
sequential SAN when `flow_links` = L > 1) -> matcher -> autoencoder pre-training -> SAN
(-> san_2..san_L, the links: `semiadv.train.flow`) -> export -> summary.

Each stage writes its artefact atomically when it finishes (`prototypes.npz`,
`<stage>/model.keras`), and checkpoints while it runs, so re-running the same command after
a crash resumes the stage that was interrupted and skips the ones that were done.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging

from semiadv.config import TrainConfig, write_config
from semiadv.data import records
from semiadv.errors import UserValueError
from semiadv.prototypes import job as prototypes_job
from semiadv.prototypes import average, storage
from semiadv.train import distribute, ensemble, flow, heldout, stages, trainer
from semiadv.train.attribute_tasks import ATTRIBUTE_STAGES, AttributeTask
from semiadv.train.autoencoder_task import AutoencoderTask
from semiadv.train.choice_task import ChoiceAsGender, ChoiceSanTask
from semiadv.train.gender_tasks import GenderMemberTask, GenderTask
from semiadv.train.matcher_task import MatcherTask
from semiadv.train.san_task import SanTask
from semiadv.utils import files


def setup(config: TrainConfig) -> tf.distribute.Strategy:
    """Process-wide options, the strategy, and the run's config written beside its artefacts.

    Raises:
      stages.StageMismatchError: before anything is written, when the config would train a
        stage the work dir has finished differently (see `semiadv.train.stages`).
    """
    stages.check(config)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_experimental_options({"remapping": config.remapper})
    strategy = distribute.make_strategy(config.strategy)
    if config.data.batch_size % strategy.num_replicas_in_sync:
        raise UserValueError(
            f"batch_size {config.data.batch_size} does not split evenly over the "
            f"{strategy.num_replicas_in_sync} replicas of {distribute.describe(strategy)}: "
            f"use a multiple of {strategy.num_replicas_in_sync}")
    if distribute.is_chief(strategy):
        write_config(config, Path(config.workdir) / "config.json")
    return strategy


def ensure_prototypes(config: TrainConfig) -> average.Prototypes:
    """The work dir's prototypes, averaged from the training faces first if missing."""
    path = Path(config.workdir) / stages.PROTOTYPES_FILE
    if not path.exists():
        logging.info("prototypes: averaging the training faces of %s", config.data.dataset)
        prototypes_job.compute_and_save(config.data, path)
    stages.record(config, "prototypes")
    return storage.load_prototypes(path)


def stage_dir(config: TrainConfig, stage: str) -> Path:
    """The work dir folder of `stage`."""
    return Path(config.workdir) / stage


def _load(config: TrainConfig, stage: str) -> keras.Model:
    path = stage_dir(config, stage) / trainer.FINAL_MODEL
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the {stage} stage first "
                                f"(semiadv-pretrain --net={stage} or semiadv-train)")
    return keras.models.load_model(path, safe_mode=True)


def pretrain(config: TrainConfig, net: str, strategy: tf.distribute.Strategy) -> keras.Model:
    """Trains one auxiliary network (or the autoencoder's pre-training) unless it is done.

    `net` is gender, gender_<k> (ensemble member k <= `config.gender_ensemble`, or the
    classifier of a link of a sequential SAN: `flow.gender_stages`), age_group or race (with
    `config.hide_attributes` naming it), matcher or autoencoder.
    """
    member = ensemble.member_index(net)
    if net in ATTRIBUTE_STAGES and net not in config.attribute_classifiers:
        raise ValueError(f"{net} is the auxiliary classifier of a choice-conditioned SAN, "
                         f"but this run's hide_attributes {list(config.hide_attributes)} "
                         f"does not name it")
    if member is not None and net not in flow.gender_stages(config):
        raise ValueError(f"{net} is extra gender classifier {member}, but this run has "
                         f"{len(flow.gender_stages(config))} (gender_ensemble is "
                         f"{config.gender_ensemble}, flow_links {config.flow_links})")
    directory = stage_dir(config, net)
    if trainer.stage_done(directory):
        logging.info("%s: done already (%s)", net, directory / trainer.FINAL_MODEL)
        if distribute.is_chief(strategy):
            stages.record(config, net)  # Work dirs trained before stage records: adopt.
        return _load(config, net)
    if net == "gender":
        task, stage = GenderTask(config), config.gender
    elif member is not None:  # Same steps and learning rate as the paper's CNN.
        task, stage = GenderMemberTask(config, member), config.gender
    elif net in ATTRIBUTE_STAGES:  # Same steps and learning rate as the paper's CNN.
        task, stage = AttributeTask(config, net), config.gender
    elif net == "matcher" and config.matcher_network == "dlib_resnet" \
            and not config.matcher_finetune:
        return _convert_dlib_matcher(config, directory)
    elif net == "matcher":
        task, stage = MatcherTask(config), config.matcher
        if not records.has_identities(task.data):
            logging.warning("matcher: %s labels no identities, so the matcher learns from two "
                            "augmented views of each photo only (--matcher_dataset can name "
                            "a set with identities)", task.data.dataset)
    elif net == "autoencoder":
        task, stage = AutoencoderTask(config, ensure_prototypes(config)), config.autoencoder
    else:
        raise ValueError(f"unknown network {net!r}: use gender, gender_<k>, age_group, race, "
                         "matcher or autoencoder")
    model = trainer.train(task, stage, config, strategy, directory).model
    if distribute.is_chief(strategy):
        stages.record(config, net)
    return model


def _convert_dlib_matcher(config: TrainConfig, directory: Path) -> keras.Model:
    """The matcher stage with --matcher=dlib_resnet: dlib's network behind the chip warp,
    written as the stage's model (no training), so the SAN and the summary load it as any."""
    from semiadv.models import dlib_resnet

    logging.info("matcher: dlib's face recognition ResNet, converted (no training)")
    model = dlib_resnet.build_dlib_matcher(config.data.image_size, config.data.channels)
    directory.mkdir(parents=True, exist_ok=True)
    trainer.atomic_keras_save(model, directory / trainer.FINAL_MODEL)
    return model


def train_san(config: TrainConfig, strategy: tf.distribute.Strategy,
              link: int = 1) -> keras.Model:
    """The semi-adversarial stage, from the pre-trained autoencoder and the frozen G and M.

    `link` k >= 2 trains link k of a sequential SAN (stage `san_<k>`) on the outputs of the
    finished links 1..k-1, against its own auxiliary classifier (`semiadv.train.flow`).
    """
    stage = flow.link_stage(link)
    directory = stage_dir(config, stage)
    if trainer.stage_done(directory):
        logging.info("%s: done already (%s)", stage, directory / trainer.FINAL_MODEL)
        if distribute.is_chief(strategy):
            stages.record(config, stage)  # Work dirs trained before stage records: adopt.
        return _load(config, stage)

    def load_models():
        if link == 1:
            return (*(_load(config, name) for name in ("autoencoder", "gender", "matcher")),
                    tuple(_load(config, name) for name in ensemble.member_stages(config)))
        auxiliary = ensemble.member_stage(flow.auxiliary_index(config, link))
        return (*(_load(config, name) for name in ("autoencoder", auxiliary, "matcher")), (),
                tuple(_load(config, flow.link_stage(k)) for k in range(1, link)))

    def load_choice_models():
        return (*(_load(config, name) for name in ("autoencoder", "gender", "matcher")),
                tuple(_load(config, name) for name in ensemble.member_stages(config)),
                {name: _load(config, name) for name in config.attribute_classifiers})

    if config.hide_attributes:  # Config refuses it with flow links: link 1 only.
        task = ChoiceSanTask(config, ensure_prototypes(config), load_choice_models)
    else:
        task = SanTask(config, ensure_prototypes(config), load_models, link=link)
    model = trainer.train(task, config.san, config, strategy, directory).model
    if distribute.is_chief(strategy):
        stages.record(config, stage)
    return model


def links(config: TrainConfig) -> list[keras.Model]:
    """The trained autoencoders of every link of `config`, first link first."""
    return [_load(config, stage) for stage in flow.link_stages(config)]


def export(config: TrainConfig, strategy: tf.distribute.Strategy) -> Path | None:
    """Exports the trained SAN for TF Serving and Keras (chief only keeps it)."""
    if config.export_dir is None:
        return None
    from semiadv.export import writer  # TF Serving plumbing: only this stage needs it.

    # In the last link's folder: a chain grown by a link gets an export of its own.
    marker = stage_dir(config, flow.link_stages(config)[-1]) / "exported.json"
    if marker.exists():
        record = json.loads(marker.read_text())
        path = Path(record["path"])
        # A new --export_dir, --export_name or --edit_strength gets an export of its own.
        if (path.parent.resolve() == (Path(config.export_dir) / config.export_name).resolve()
                and record.get("edit_strength", 1.0) == config.edit_strength):
            logging.info("export: done already (%s)", path)
            return path
    if not distribute.is_chief(strategy):
        return None
    first, *later = links(config)
    path = writer.export_san(first, _load(config, "gender"), ensure_prototypes(config),
                             config.export_dir, config.export_name, later_links=later,
                             hide_attributes=config.choice_attributes,
                             edit_strength=config.edit_strength)
    files.write_json_atomically(marker, {"path": str(path), "edit_strength": config.edit_strength},
                                indent=None)
    return path


def run(config: TrainConfig) -> dict:
    """Runs every unfinished stage, then the held-out summary; returns the summary."""
    strategy = setup(config)
    ensure_prototypes(config)
    for net in ("gender", *config.attribute_classifiers, *flow.gender_stages(config),
                "matcher", "autoencoder"):
        pretrain(config, net, strategy)
    trained = [train_san(config, strategy, link) for link in range(1, config.flow_links + 1)]
    export_path = export(config, strategy)
    # A chain is summarised whole, as the export applies it; by the paper's CNN (link 1's).
    autoencoder = trained[0] if len(trained) == 1 else flow.Chain(trained)
    if config.hide_attributes:  # Summarised as keep all (SM) and hide gender alone (OP).
        autoencoder = ChoiceAsGender(autoencoder)
    summary = heldout.san_summary(autoencoder, _load(config, "gender"), _load(config, "matcher"),
                                  ensure_prototypes(config), config.data,
                                  edit_strength=config.edit_strength)
    summary["export"] = str(export_path) if export_path else None
    if distribute.is_chief(strategy):
        files.write_json_atomically(Path(config.workdir) / "summary.json", summary)
    return summary
