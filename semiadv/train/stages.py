"""What trained each stage of a work dir, so a rerun never silently reuses a stage that
its flags would have trained differently.

When a stage finishes, the settings that shaped it are written next to its artefact
(`<stage>/stage_config.json`; `prototypes_config.json` beside `prototypes.npz`). A rerun
compares them with its own config before any work: if a finished stage would now be trained
differently, `check` raises a `StageMismatchError` listing each difference (flag, old, new)
and the remedy, a new work dir or `--retrain_from=<stages>`, which `retrain` carries out by
deleting those stages and every stage trained from them.

Which settings shape which stage:
  - `NOT_TRAINING`: shape no weights (where to export, how often to checkpoint, caches,
    performance options): changing them on a finished work dir is always fine.
  - `STAGE_SETTINGS[stage]`: shape only that stage, and the stages trained from it
    (`trained_from`): the SAN is trained from every other stage, the autoencoder's
    pre-training from the prototypes, link k of a sequential SAN (`san_<k>`) from the
    links before it. Every link is a stage of kind "san": its settings are the SAN's.
  - `NOT_PROTOTYPES`: shape every trained stage but not the prototypes (an average).
  - every other field, including any field added to `TrainConfig` later and not listed
    here, shapes every stage: new settings are conservatively taken to matter.
Work dirs trained before these records existed have a `config.json` only: it stands in for
the record of each finished stage.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from semiadv.config import TrainConfig
from semiadv.errors import UserValueError
from semiadv.train import distribute, ensemble, flow, trainer
from semiadv.train.attribute_tasks import ATTRIBUTE_STAGES
from semiadv.utils import files

RECORD_NAME = "stage_config.json"
PROTOTYPES_FILE = "prototypes.npz"
PROTOTYPES_RECORD = "prototypes_config.json"
PROTOTYPES_FILES = (PROTOTYPES_FILE, "prototypes.png", PROTOTYPES_RECORD)
CONFIG_NAME = "config.json"

# Settings that shape no trained weights.
NOT_TRAINING = frozenset({
    "workdir", "strategy", "checkpoint_every", "steps_per_loop", "image_summaries",
    "export_dir", "export_name", "edit_strength", "deterministic", "jit_compile", "remapper",
    # How many links a sequential SAN has: no link is trained differently for it (a K=1
    # work dir grows to K=2 by training san_2 alone); the export follows it.
    "flow_links",
    "data.cache", "data.cache_megabytes", "data.cache_dir", "data.tfds_data_dir",
    "data.align_cache_dir",
})
# Settings that shape one kind of stage only (gender also covers gender_<k>: the ensemble's
# members train with the gender stage's steps, learning rate and width).
STAGE_SETTINGS = {
    "gender": ("gender.steps", "gender.learning_rate", "networks.classifier_width",
               "gender_robust_radius", "gender_robust_steps", "gender_robust_warmup",
               "member_input_sizes"),
    "matcher": ("matcher.steps", "matcher.learning_rate", "networks.matcher_width",
                "networks.embedding_dim", "triplet_margin", "triplet_mining",
                "matcher_dataset", "matcher_network", "matcher_finetune"),
    # hide_attributes: the choice autoencoder reads the choice (`choice_autoencoder`), so it
    # is another network from its pre-training on; the classifier stages it adds are
    # trained as any (their own stages, listed by `stage_order`).
    "autoencoder": ("autoencoder.steps", "autoencoder.learning_rate",
                    "networks.encoder_filters", "networks.decoder_filters",
                    "networks.residual", "networks.upsampling", "networks.max_change",
                    "networks.encoder_prototype",
                    "pixel_loss", "warp_prototypes", "hide_attributes"),
    # The auxiliary age group and race classifiers (kind "attribute"; the gender stage's
    # steps, learning rate and width shape them too).
    "attribute": ("attribute_robust_radius", "attribute_robust_steps", "attribute_grey"),
    "san": ("san.steps", "san.learning_rate", "gender_weight", "match_weight",
            "pixel_weight", "gender_ensemble", "match_opposite", "match_warmup_steps",
            "gender_same_weight", "gender_same_target", "ssim_weight", "colour_weight",
            "colour_tolerance", "match_same", "match_jitter", "gender_jitter",
            "gender_diversity", "attribute_weight", "attribute_hidden_target"),
}
# Gender settings that shape the extra classifiers (gender_<k>) but not the paper's CNN.
EXTRA_CLASSIFIERS_ONLY = ("member_input_sizes",)
# The auxiliary age group and race classifiers of a choice-conditioned SAN (ATTRIBUTE_STAGES,
# kind "attribute"): trained with the gender stage's steps, learning rate and
# width, but not with its robust search (they have their own, attribute_robust_*).
GENDER_CLASSIFIERS_ONLY = ("gender_robust_radius", "gender_robust_steps",
                           "gender_robust_warmup", "member_input_sizes")
# Settings of how networks are trained, which the prototypes (an average) do not depend on.
NOT_PROTOTYPES = ("data.batch_size", "flip_augment", "mixed_precision")
# Listed for the test that every field is placed; a field in no list shapes every stage.
EVERY_STAGE = ("data.dataset", "data.image_size", "data.channels", "data.seed",
               "data.validation_fraction", "data.test_fraction", "data.synthetic_identities",
               "data.synthetic_images_per_identity", "data.align_detector")

BASE_STAGES = ("prototypes", "gender", "matcher", "autoencoder", "san")


class StageMismatchError(UserValueError):
    """A rerun's flags would change a stage the work dir has already trained."""


def _kind(stage: str) -> str:
    """The stage's kind: its name, "gender" for an extra classifier gender_<k> (ensemble
    member or a link's), "san" for a link san_<k> of a sequential SAN."""
    if ensemble.member_index(stage) is not None:
        return "gender"
    if flow.link_index(stage) is not None:
        return "san"
    if stage in ATTRIBUTE_STAGES:
        return "attribute"
    if stage not in BASE_STAGES:
        raise UserValueError(f"unknown stage {stage!r}: use one of prototypes, gender, "
                             "gender_<k>, age_group, race, matcher, autoencoder, san, san_<k>")
    return stage


def _settings_from(kind: str) -> tuple[str, ...]:
    """The kinds of stage whose settings shape a stage of kind `kind` (itself included)."""
    return {"autoencoder": ("prototypes", "autoencoder"),
            "attribute": ("attribute", "gender"),
            "san": BASE_STAGES}.get(kind, (kind,))


def trained_from(stage: str, config: TrainConfig) -> tuple[str, ...]:
    """`stage` and every stage of `config` trained from it, in training order."""
    kind = _kind(stage)
    if kind == "san":  # A link: the links after it are trained on its outputs.
        link = flow.link_index(stage)
        return tuple(s for s in stage_order(config)
                     if s == stage or (flow.link_index(s) or 0) > link)
    later = ("autoencoder", "san") if kind == "prototypes" else ("san",)
    return tuple(s for s in stage_order(config)
                 if s == stage or _kind(s) in later)


def stage_order(config: TrainConfig) -> tuple[str, ...]:
    """The stages of `config` in training order."""
    return ("prototypes", "gender", *config.attribute_classifiers, *flow.gender_stages(config),
            "matcher", "autoencoder", *flow.link_stages(config))


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """A (nested) config dataclass or dict as {dotted field name: JSON value}."""
    if dataclasses.is_dataclass(values):
        values = dataclasses.asdict(values)
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = list(value) if isinstance(value, tuple) else value
    return flat


def settings(flat: dict[str, Any], stage: str) -> dict[str, Any]:
    """The settings (of a flattened config) that shape `stage`."""
    kind = _kind(stage)
    relevant = _settings_from(kind)
    owner = {name: owner for owner, names in STAGE_SETTINGS.items() for name in names}
    return {name: value for name, value in flat.items()
            if name not in NOT_TRAINING
            and owner.get(name, kind) in relevant
            and not (kind == "prototypes" and name in NOT_PROTOTYPES)
            and not (stage == "gender" and name in EXTRA_CLASSIFIERS_ONLY)
            and not (kind == "attribute" and name in GENDER_CLASSIFIERS_ONLY)}


def record_path(workdir: str | Path, stage: str) -> Path:
    """Where the record of `stage` is written."""
    if stage == "prototypes":
        return Path(workdir) / PROTOTYPES_RECORD
    return Path(workdir) / stage / RECORD_NAME


def is_done(workdir: str | Path, stage: str) -> bool:
    """Whether `stage` has finished in `workdir` (its artefact is written)."""
    if stage == "prototypes":
        return (Path(workdir) / PROTOTYPES_FILE).exists()
    return trainer.stage_done(Path(workdir) / stage)


def record(config: TrainConfig, stage: str) -> None:
    """Writes the settings that trained a just finished stage, unless already recorded.

    An existing record is kept: after `check` it matches, and it is the truth about how the
    stage was trained.
    """
    path = record_path(config.workdir, stage)
    if path.exists() or not is_done(config.workdir, stage):
        return
    content = {"stage": stage, "settings": settings(flatten(config), stage)}
    files.write_json_atomically(path, content, sort_keys=True)


def recorded(workdir: str | Path, stage: str) -> tuple[dict[str, Any], str] | None:
    """(the settings that trained a finished stage, where they were read), or None."""
    path = record_path(workdir, stage)
    if path.exists():
        return json.loads(path.read_text())["settings"], str(path)
    legacy = Path(workdir) / CONFIG_NAME
    if legacy.exists():  # Trained before stage records: config.json is the best witness.
        return settings(flatten(json.loads(legacy.read_text())), stage), str(legacy)
    return None


@dataclasses.dataclass(frozen=True)
class Difference:
    """A setting of a finished stage that `config` would change."""

    stage: str
    field: str
    old: Any
    new: Any

    @property
    def flag(self) -> str:
        """The flag that sets the field: --san_steps for san.steps, --image_size for
        data.image_size, --match_weight for match_weight."""
        if self.field in _FLAG_NAMES:
            return _FLAG_NAMES[self.field]
        parts = self.field.split(".")
        if len(parts) == 2 and parts[0] in BASE_STAGES:
            return f"--{parts[0]}_{parts[1]}"
        return f"--{parts[-1]}"


# Fields whose flag is not named after them.
_FLAG_NAMES = {"matcher_network": "--matcher"}
_UNRECORDED = "(not recorded)"


def differences(config: TrainConfig, skip=()) -> list[Difference]:
    """How `config` differs from what trained each finished stage (except those in `skip`).

    A setting missing from a record (a field added since) counts as different only when it
    is set away from its default: defaults of new fields keep the old behaviour.
    """
    current, defaults = flatten(config), flatten(TrainConfig())
    found = []
    for stage in stage_order(config):
        if stage in skip or not is_done(config.workdir, stage):
            continue
        old = recorded(config.workdir, stage)
        if old is None:
            continue  # Nothing says how it was trained: nothing to compare.
        old_settings, _ = old
        for name, new in settings(current, stage).items():
            if name in old_settings:
                if old_settings[name] != new:
                    found.append(Difference(stage, name, old_settings[name], new))
            elif new != defaults.get(name, _UNRECORDED):
                found.append(Difference(stage, name, _UNRECORDED, new))
    return found


def _minimal_retrain(stages: list[str], config: TrainConfig) -> list[str]:
    """The fewest stages whose retraining (with what is trained from them) covers `stages`."""
    chosen = []
    for stage in stage_order(config):
        if stage in stages and not any(stage in trained_from(c, config) for c in chosen):
            chosen.append(stage)
    return chosen


def _mismatch_message(config: TrainConfig, found: list[Difference]) -> str:
    by_flag: dict[tuple[str, str], list[Difference]] = {}
    for difference in found:
        by_flag.setdefault((difference.flag, difference.field), []).append(difference)
    listed = "; ".join(
        f"{flag}: {json.dumps(items[0].old)} -> {json.dumps(items[0].new)} "
        f"(finished stage{'s' if len(items) > 1 else ''} "
        f"{', '.join(item.stage for item in items)})"
        for (flag, _), items in by_flag.items())
    stages = _minimal_retrain(sorted({d.stage for d in found}), config)
    last = [s for s in stage_order(config) if s in {d.stage for d in found}][-1]
    witness = record_path(config.workdir, last)
    if not witness.exists():
        witness = Path(config.workdir) / CONFIG_NAME
    return (f"work dir {config.workdir} was trained with other settings than these flags: "
            f"{listed}. Nothing was changed. To keep the finished stages, run again with the "
            f"flags they were trained with (see {witness}), or use a new --workdir; to train them "
            f"again with the new flags add --retrain_from={','.join(stages)} (deletes them "
            "and the stages trained from them)")


def check(config: TrainConfig, skip=()) -> None:
    """Raises `StageMismatchError` if `config` would train a finished stage differently.

    Reads only: call it before anything is written to the work dir.
    """
    found = differences(config, skip)
    if found:
        raise StageMismatchError(_mismatch_message(config, found))


def _stale_links(workdir: Path, doomed: tuple[str, ...], config: TrainConfig) -> tuple[str, ...]:
    """Links beyond `config.flow_links` left by a longer chain, trained from a doomed link:
    kept, a later run with more links would take them for finished."""
    retrained = [flow.link_index(s) for s in doomed if flow.link_index(s) is not None]
    if not retrained or not workdir.is_dir():
        return ()
    found = sorted((flow.link_index(path.name), path.name) for path in workdir.iterdir()
                   if flow.link_index(path.name) is not None)
    return tuple(name for index, name in found
                 if index > max(config.flow_links, min(retrained)))


def retrain(config: TrainConfig, stages=()) -> tuple[str, ...]:
    """Deletes the named finished stages that `config` would train differently, and every
    stage trained from them, so the run that follows trains them anew.

    A named stage whose record matches `config` is kept, as is an unfinished one: running
    the same command again (to resume after a crash, say) deletes nothing more. Everything
    is checked first: unknown stages, and finished stages outside the named ones that would
    still differ, are refused with nothing deleted.

    Returns:
      The stages deleted (in training order).
    """
    if not stages:
        check(config)
        return ()
    order = stage_order(config)
    for stage in stages:
        _kind(stage)
        if stage not in order:
            raise UserValueError(f"--retrain_from={stage}: no such stage in this run (stages: "
                                 f"{', '.join(order)})")
    allowed = {s for s in order if any(s in trained_from(t, config) for t in stages)}
    changed = {difference.stage for difference in differences(config)} & allowed
    doomed = tuple(s for s in order if any(s in trained_from(c, config) for c in changed))
    found = differences(config, skip=doomed)
    if found:
        raise StageMismatchError(_mismatch_message(config, found))
    workdir = Path(config.workdir)
    doomed += _stale_links(workdir, doomed, config)
    # Partly trained stages go too: their checkpoints were trained from the old stages.
    doomed = tuple(s for s in doomed if (workdir / (
        PROTOTYPES_FILE if s == "prototypes" else s)).exists())
    if distribute.is_chief_process():
        for stage in doomed:
            if stage == "prototypes":
                for name in PROTOTYPES_FILES:
                    (workdir / name).unlink(missing_ok=True)
            else:
                shutil.rmtree(workdir / stage, ignore_errors=True)
    return doomed
