"""The classifiers and matchers an evaluation runs: auxiliary, independent and plugged in.

Every evaluator has an `origin` ("auxiliary", "ensemble", "independent" or "plug-in") and is
seen (the SAN was trained against it) or unseen; only unseen ones say whether the SAN
generalises.
"""

from __future__ import annotations

from pathlib import Path

import keras

from semiadv.config import DataConfig
from semiadv.evaluation import independent, plugins
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
                                  "auxiliary", seen=True))
    members = sorted(Path(workdir).glob("gender_*/model.keras"),
                     key=lambda path: (len(path.parent.name), path.parent.name))
    for path in members:
        member = path.parent.name.removeprefix("gender_")
        evaluators.insert(len(evaluators) - 1, plugins.KerasGenderClassifier(
            keras.models.load_model(path, safe_mode=True), f"ensemble member {member}",
            "ensemble", seen=True))
    return evaluators


def independent_evaluators(config: EvaluationConfig, matcher_data: DataConfig) -> list:
    """The independent gender classifier and matcher (`semiadv.evaluation.independent`),
    trained on first use; both unseen."""
    gender = independent.load_or_train("gender", config.data, config.independent_gender,
                                       config.eval_workdir)
    matcher = independent.load_or_train("matcher", matcher_data, config.independent_matcher,
                                        config.eval_workdir)
    return [plugins.KerasGenderClassifier(gender, "independent ResNet", "independent",
                                          seen=False),
            plugins.KerasMatcher(matcher, "independent ResNet matcher", "independent",
                                 seen=False)]


def gather_evaluators(config: EvaluationConfig, matcher_data: DataConfig) -> list:
    """Every evaluator of the run as (unique name, evaluator) pairs, each with an `origin`."""
    evaluators = auxiliary_evaluators(config.workdir) if config.workdir else []
    if config.independent:
        evaluators += independent_evaluators(config, matcher_data)
    plugged = [plugins.load_factory(spec) for spec in config.evaluators]
    if config.onnx_matchers:
        from semiadv.evaluation import onnx_matcher  # onnxruntime only when asked for.

        plugged += [onnx_matcher.make(spec) for spec in config.onnx_matchers]
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


def is_seen(evaluator) -> bool:
    """Whether the SAN was trained against `evaluator`: its own `seen` attribute, else True
    for the auxiliary networks and ensemble members and False for everything else."""
    seen = getattr(evaluator, "seen", None)
    if seen is None:
        return origin(evaluator) in ("auxiliary", "ensemble")
    return bool(seen)
