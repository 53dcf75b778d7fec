"""The classifiers and matchers an evaluation runs: auxiliary, independent and plugged in.

Every evaluator has an `origin` ("auxiliary", "ensemble", "independent", "built-in" or
"plug-in") and a `relation` to the SAN (`relation()`):

- "seen": the SAN was trained against it (the auxiliary networks, ensemble members, plug-ins
  that say so);
- "sibling": same data and input as the auxiliary networks, another architecture (the
  independent networks): closer to the SAN's own than any stranger, so it overstates transfer;
- "foreign": another family or other data (plug-ins by default, the built-in foreign
  classifiers). Only foreign classifiers say whether the SAN hides gender from strangers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import keras

from semiadv.config import DataConfig
from semiadv.evaluation import foreign, independent, plugins

if TYPE_CHECKING:  # The config holds the attackers', which score with `relation` from here.
    from semiadv.evaluation.config import EvaluationConfig


def auxiliary_evaluators(workdir: str) -> list:
    """The networks the SAN trained against: the gender CNN, the ensemble members
    (`gender_<k>/`, Ensemble SAN) and the matcher; all seen.

    Raises:
      FileNotFoundError: naming the missing model when `workdir` is not a trained work dir.
    """
    evaluators = []
    for stage, wrapper, name in (("gender", plugins.KerasGenderClassifier, "auxiliary CNN"),
                                 ("matcher", plugins.KerasMatcher, "auxiliary matcher")):
        path = Path(workdir) / stage / "model.keras"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: --workdir must be a trained work dir "
                                    "(semiadv-train), or leave --workdir out")
        evaluators.append(wrapper(keras.models.load_model(path, safe_mode=True), name,
                                  "auxiliary", seen=True, relation="seen"))
    members = sorted(Path(workdir).glob("gender_*/model.keras"),
                     key=lambda path: (len(path.parent.name), path.parent.name))
    for path in members:
        member = path.parent.name.removeprefix("gender_")
        evaluators.insert(len(evaluators) - 1, plugins.KerasGenderClassifier(
            keras.models.load_model(path, safe_mode=True), f"ensemble member {member}",
            "ensemble", seen=True, relation="seen"))
    return evaluators


def independent_evaluators(config: EvaluationConfig, matcher_data: DataConfig) -> list:
    """The independent gender classifier and matcher (`semiadv.evaluation.independent`),
    trained on first use; both unseen siblings of the auxiliary networks (same data and size)."""
    gender = independent.load_or_train("gender", config.data, config.independent_gender,
                                       config.eval_workdir)
    matcher = independent.load_or_train("matcher", matcher_data, config.independent_matcher,
                                        config.eval_workdir)
    return [plugins.KerasGenderClassifier(gender, "independent ResNet", "independent",
                                          seen=False, relation="sibling"),
            plugins.KerasMatcher(matcher, "independent ResNet matcher", "independent",
                                 seen=False, relation="sibling")]


def gather_evaluators(config: EvaluationConfig, matcher_data: DataConfig) -> list:
    """Every evaluator of the run as (unique name, evaluator) pairs, each with an `origin`."""
    evaluators = auxiliary_evaluators(config.workdir) if config.workdir else []
    if config.independent:
        evaluators += independent_evaluators(config, matcher_data)
    evaluators += foreign.foreign_evaluators(config.data, config.foreign, config.eval_workdir)
    plugged = [plugins.load_factory(spec) for spec in config.evaluators]
    if config.onnx_matchers:
        from semiadv.evaluation import onnx_matcher  # onnxruntime only when asked for.

        plugged += [onnx_matcher.make(spec) for spec in config.onnx_matchers]
    if config.gender_classifiers:
        from semiadv.evaluation import gender_file

        plugged += [gender_file.make(spec) for spec in config.gender_classifiers]
    if config.entry_points:
        plugged += plugins.entry_point_evaluators()
    for evaluator in plugged:
        if not hasattr(evaluator, "origin"):
            try:
                evaluator.origin = "plug-in"
            except AttributeError:  # Frozen or slotted plug-ins keep no origin; fine.
                pass
    evaluators += plugged
    seen: dict[str, int] = {}
    names = []
    for evaluator in evaluators:
        count = seen[evaluator.name] = seen.get(evaluator.name, 0) + 1
        names.append(evaluator.name if count == 1 else f"{evaluator.name} #{count}")
    return list(zip(names, evaluators))


def origin(evaluator) -> str:
    """Where `evaluator` comes from; "plug-in" when it does not say."""
    return getattr(evaluator, "origin", "plug-in")


RELATIONS = ("seen", "sibling", "foreign")


def relation(evaluator) -> str:
    """"seen", "sibling" or "foreign" (module docstring): the evaluator's own `relation`
    attribute; else "seen" if its `seen` attribute is true; else by origin: seen for the
    auxiliary networks and ensemble members, sibling for the independent ones, foreign for
    everything else.

    Raises:
      ValueError: naming the evaluator when its `relation` is not one of `RELATIONS`.
    """
    told = getattr(evaluator, "relation", None)
    if told is not None:
        if told not in RELATIONS:
            raise ValueError(f"evaluator {getattr(evaluator, 'name', evaluator)!r}: relation="
                             f"{told!r}, want one of {RELATIONS}")
        return told
    seen = getattr(evaluator, "seen", None)
    if seen:
        return "seen"
    where = origin(evaluator)
    if seen is None and where in ("auxiliary", "ensemble"):
        return "seen"
    return "sibling" if where == "independent" else "foreign"


def is_seen(evaluator) -> bool:
    """Whether the SAN was trained against `evaluator` (`relation` "seen")."""
    return relation(evaluator) == "seen"
