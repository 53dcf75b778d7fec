"""`semiadv-evaluate`: judges an exported SAN the way the paper does, and against naive baselines.

For the original test faces and the SAN's same (SM), neutral (NT) and opposite (OP) outputs:

- gender: error rate and ROC-AUC of the auxiliary gender CNN and ensemble members (from a
  training work dir), of an independent residual classifier trained here on the `validation`
  split (the stand-in for an unseen commercial classifier), and of any classifier plugged in
  (`semiadv.evaluation.plugins`);
- matching: ROC, TMR at FMR 1% and 0.1% of the auxiliary matcher, an independent matcher and
  plugged-in matchers (e.g. an ONNX file, `semiadv.evaluation.onnx_matcher`), probe = output,
  gallery = the original of ANOTHER photo of the same person (or of the same photo when no
  identities exist, which the outputs say);
- fidelity: SSIM, PSNR, CIELAB colour difference and the face detector's hit rate of each
  output against its original (`semiadv.evaluation.fidelity`), on the gender test faces and,
  with an identity dataset, on its photos too;
- baselines: Gaussian blur and pixelation at the strength that costs the strongest matcher the
  SAN never saw as much as the SAN's OP does, with their gender errors.

Every classifier and matcher is marked seen (the SAN trained against it: auxiliary networks,
ensemble members, plug-ins saying `seen = True`) or unseen; only unseen ones say whether the
SAN generalises. Outputs in `output_dir`: metrics.json, report.md (a two-sentence verdict, then
the paper's two tables), ROC plots and, when asked, a grid of faces.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from semiadv.data import datasets as data
from semiadv.perturb import folder as perturb
from semiadv.config import DataConfig, StageConfig
from semiadv.evaluation import baselines as baselines_lib
from semiadv.evaluation import fidelity, independent, metrics, plugins, report
from semiadv.evaluation.independent import IndependentConfig
from semiadv.prototypes.kinds import KINDS

SAN_CONDITIONS = KINDS
CONDITIONS = ("original",) + SAN_CONDITIONS
FMRS = (0.01, 0.001)
SIMILARITY = "negative squared distance between L2-normalised embeddings (= 2 cos - 2)"


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and how.

    Attributes:
      export: export version dir, or model dir (its highest version).
      output_dir: where metrics.json, report.md and the PNGs go.
      data: the gender test set: its `test` split is evaluated, its `validation` split trains
        the independent networks. Must be the data config the SAN was trained with, so the
        three splits are disjoint.
      identity_dataset: optional dataset spec with identities for the matching tests when
        `data` has none (e.g. UTKFace); same size, channels and split seed as `data`.
      workdir: the SAN's training work dir, for its auxiliary gender CNN and matcher
        (None: leave them out).
      eval_workdir: cache of the independent networks, shared by evaluations of any export.
      evaluators: `module:factory` specs of plugged-in classifiers and matchers.
      onnx_matchers: `path[?settings]` specs of ONNX face matchers
        (`semiadv.evaluation.onnx_matcher`).
      entry_points: also load every factory of the `semiadv.evaluators` entry-point group.
      independent: train (or reuse) the independent classifier and matcher.
      independent_gender, independent_matcher: their training set-up.
      max_examples: test faces read from each set (the first ones, in a fixed order).
      impostors_per_probe: impostor pairs sampled per probe.
      baselines: search the blur and pixelation strengths matching OP's TMR@FMR=1%.
      save_grid: write grid.png of faces (None: only for the synthetic dataset, because the
        grid shows real faces otherwise).
      grid_faces: faces (rows) in the grid.
      batch_size: images per call of the export and the evaluators.
      seed: seed of the impostor sampling.
    """

    export: str
    output_dir: str
    data: DataConfig = DataConfig()
    identity_dataset: str | None = None
    workdir: str | None = None
    eval_workdir: str = "models/evaluation"
    evaluators: tuple[str, ...] = ()
    onnx_matchers: tuple[str, ...] = ()
    entry_points: bool = True
    independent: bool = True
    independent_gender: IndependentConfig = IndependentConfig()
    independent_matcher: IndependentConfig = IndependentConfig(
        stage=StageConfig(steps=600, learning_rate=1e-4))
    max_examples: int | None = 2000
    impostors_per_probe: int = 50
    baselines: bool = True
    save_grid: bool | None = None
    grid_faces: int = 6
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self):
        if self.identity_dataset is not None:
            data.parse_spec(self.identity_dataset)  # Fails early, naming the spec.
        if self.onnx_matchers:
            from semiadv.evaluation import onnx_matcher

            for spec in self.onnx_matchers:
                onnx_matcher.parse_spec(spec)  # Fails early, naming the setting.
        for name in ("impostors_per_probe", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_examples is not None and self.max_examples < 2:
            raise ValueError(f"max_examples must be at least 2 (or None), got {self.max_examples}")
        if self.grid_faces < 1:
            raise ValueError(f"grid_faces must be positive, got {self.grid_faces}")

    @property
    def grid_enabled(self) -> bool:
        if self.save_grid is None:
            return data.parse_spec(self.data.dataset).kind == "synthetic"
        return self.save_grid


# ---------------------------------------------------------------------------------------------
# The export and the data.
# ---------------------------------------------------------------------------------------------


class Perturber:
    """The export's `<kind>_labelled` signatures: prototypes follow the true gender where it is
    known (as in the paper), the export's own gender CNN where it is not (male = -1)."""

    def __init__(self, export_path: str):
        self.path = perturb.resolve_export(export_path)
        self._loaded = tf.saved_model.load(str(self.path))  # Kept: signatures read its variables.
        missing = [f"{kind}_labelled" for kind in SAN_CONDITIONS
                   if f"{kind}_labelled" not in self._loaded.signatures]
        if missing:
            raise ValueError(f"export {self.path} lacks signature(s) {missing}; re-export it "
                             "with semiadv-export")
        _, inputs = self._loaded.signatures["same_labelled"].structured_input_signature
        self.image_shape = tuple(int(size) for size in inputs["image"].shape[1:])

    def __call__(self, images: np.ndarray, male: np.ndarray, batch_size: int) -> dict:
        """{"same", "neutral", "opposite"}: the outputs [N, H, W, C] for images [N, H, W, C]."""
        outputs = {kind: [] for kind in SAN_CONDITIONS}
        labels = np.where(metrics.known_gender(male), male, -1).astype(np.float32)
        for start in range(0, len(images), batch_size):
            image = tf.constant(images[start:start + batch_size], tf.float32)
            label = tf.constant(labels[start:start + batch_size])
            for kind in SAN_CONDITIONS:
                result = self._loaded.signatures[f"{kind}_labelled"](image=image, male=label)
                outputs[kind].append(result["perturbed"].numpy())
        return {kind: np.concatenate(parts) for kind, parts in outputs.items()}


def _check_shape(perturber: Perturber, config: DataConfig) -> None:
    wanted = (config.image_size, config.image_size, config.channels)
    if perturber.image_shape != wanted:
        raise ValueError(f"export {perturber.path} takes {perturber.image_shape} faces but the "
                         f"data config gives {wanted}: set --image_size and --channels to match")


def _read_test(config: DataConfig, limit: int | None) -> dict:
    logging.info("reading the test split of %s", config.dataset)
    return data.read_split(config, "test", limit=limit)


def _has_identity_pairs(identity: np.ndarray) -> bool:
    """Whether some person has at least two photos (a genuine pair with distinct photos)."""
    known = identity[identity >= 0]
    return bool(len(known)) and np.bincount(known - known.min()).max() >= 2


# ---------------------------------------------------------------------------------------------
# Evaluators.
# ---------------------------------------------------------------------------------------------


def _auxiliary(workdir: str) -> list:
    """The networks the SAN trained against: the gender CNN, the ensemble members
    (`gender_<k>/`, Ensemble SAN) and the matcher; all seen."""
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


def _independent(config: EvaluationConfig, matcher_data: DataConfig) -> list:
    gender = independent.load_or_train("gender", config.data, config.independent_gender,
                                       config.eval_workdir)
    matcher = independent.load_or_train("matcher", matcher_data, config.independent_matcher,
                                        config.eval_workdir)
    return [plugins.KerasGenderClassifier(gender, "independent ResNet", "independent",
                                          seen=False),
            plugins.KerasMatcher(matcher, "independent ResNet matcher", "independent",
                                 seen=False)]


def gather_evaluators(config: EvaluationConfig, matcher_data: DataConfig) -> list:
    """Every evaluator of the run, each with an `origin`, names made unique."""
    evaluators = _auxiliary(config.workdir) if config.workdir else []
    if config.independent:
        evaluators += _independent(config, matcher_data)
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


def _origin(evaluator) -> str:
    return getattr(evaluator, "origin", "plug-in")


def is_seen(evaluator) -> bool:
    """Whether the SAN was trained against `evaluator`: its own `seen` attribute, else True
    for the auxiliary networks and ensemble members and False for everything else."""
    seen = getattr(evaluator, "seen", None)
    if seen is None:
        return _origin(evaluator) in ("auxiliary", "ensemble")
    return bool(seen)


# ---------------------------------------------------------------------------------------------
# Gender.
# ---------------------------------------------------------------------------------------------


def gender_section(classifiers, images: dict, male: np.ndarray, batch_size: int):
    """(metrics per classifier, ROC curves per classifier) over the examples of known gender."""
    section, curves = {}, {}
    known = metrics.known_gender(male)
    for name, classifier in classifiers:
        logging.info("gender: %s", name)
        entry, curve = {}, {}
        for condition, faces in images.items():
            probability = plugins.apply(classifier, faces[known], batch_size)
            labels = male[known]
            entry[condition] = {"error_rate": metrics.error_rate(probability, labels),
                                "auc": metrics.gender_auc(probability, labels)}
            curve[condition] = metrics.roc_curve(probability[labels == 1],
                                                 probability[labels == 0])
        section[name] = {"origin": _origin(classifier), "seen": is_seen(classifier),
                         "conditions": entry}
        curves[name] = curve
    return section, curves


# ---------------------------------------------------------------------------------------------
# Matching.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class MatchingSet:
    """The photos the matchers are tested on, their perturbed versions and the pairs."""

    dataset: str
    images: dict  # condition -> probes [N, H, W, C]; "original" is also the gallery.
    genuine: np.ndarray
    impostor: np.ndarray
    protocol: str
    note: str


def matching_set(config: EvaluationConfig, test: dict, outputs: dict,
                 perturber: Perturber) -> MatchingSet:
    """Picks the identity set: --identity_dataset, else the test set's own identities, else
    the same photo as gallery (said in the note)."""
    dataset, identity = config.data.dataset, test["identity"]
    images = {"original": test["image"], **outputs}
    if config.identity_dataset:
        identity_data = dataclasses.replace(config.data, dataset=config.identity_dataset)
        other = _read_test(identity_data, config.max_examples)
        logging.info("perturbing %d faces of %s for matching", len(other["image"]),
                     config.identity_dataset)
        images = {"original": other["image"],
                  **perturber(other["image"], other["male"], config.batch_size)}
        dataset, identity = config.identity_dataset, other["identity"]
        if not _has_identity_pairs(identity):
            raise ValueError(f"--identity_dataset={config.identity_dataset}: its test split has "
                             "no person with two photos; it needs identities")
    if _has_identity_pairs(identity):
        protocol = "identity"
        note = ("Probe: a perturbed photo; gallery: the originals of the OTHER photos of the "
                "same person (genuine) and of other people (impostors).")
    else:
        protocol, identity = "same_photo", None
        note = ("No identities in this set: the gallery mate of each perturbed probe is the "
                "original of the SAME photo, an easier test than the paper's; the original-vs-"
                "original row is trivially 100%. Use --identity_dataset for identity matching.")
    genuine, impostor = metrics.make_pairs(identity, len(images["original"]),
                                           config.impostors_per_probe, config.seed)
    if not len(genuine) or not len(impostor):
        raise ValueError(f"{dataset}: no genuine or no impostor pairs in its test split")
    return MatchingSet(dataset, images, genuine, impostor, protocol, note)


def _scores(embed, probes: np.ndarray, gallery_embeddings: np.ndarray, pairs: MatchingSet):
    probe_embeddings = embed(probes)
    return (metrics.similarity(probe_embeddings, gallery_embeddings, pairs.genuine),
            metrics.similarity(probe_embeddings, gallery_embeddings, pairs.impostor))


def matcher_conditions(matcher, pairs: MatchingSet, images: dict, batch_size: int):
    """({condition: metrics}, {condition: ROC}) of one matcher on `images[condition]` probes."""
    embed = lambda faces: plugins.apply(matcher, faces, batch_size)  # noqa: E731
    gallery = embed(pairs.images["original"])
    entry, curves = {}, {}
    for condition, probes in images.items():
        genuine, impostor = _scores(embed, probes, gallery, pairs)
        entry[condition] = metrics.matching_metrics(genuine, impostor, FMRS)
        curves[condition] = metrics.roc_curve(genuine, impostor)
    return entry, curves


def matching_section(matchers, pairs: MatchingSet, batch_size: int):
    section, curves = {}, {}
    for name, matcher in matchers:
        logging.info("matching: %s", name)
        entry, curve = matcher_conditions(matcher, pairs, pairs.images, batch_size)
        section[name] = {"origin": _origin(matcher), "seen": is_seen(matcher),
                         "conditions": entry}
        curves[name] = curve
    return section, curves


# ---------------------------------------------------------------------------------------------
# Baselines.
# ---------------------------------------------------------------------------------------------


def _reference_matcher(matchers, matching):
    """The matcher the SAN never saw that recognises the original photos best, or None.

    The baselines are set to cost recognition as much as the SAN's OP does. Against a matcher
    near chance on the originals that says nothing (a blur of sigma 22 "matched" a matcher at
    2% TMR), so the strongest unseen matcher, independent or plugged in, sets the bar; the
    first in order among equals. Never a seen one (auxiliary, or a plug-in with `seen =
    True`, like dlib's): the SAN was trained to keep exactly what that matcher reads, so
    calibrating there would flatter the SAN against the baselines.
    """
    def original_tmr(entry):
        return matching[entry[0]]["conditions"]["original"]["tmr_at_fmr"][str(FMRS[0])]

    unseen = [entry for entry in matchers if not is_seen(entry[1])]
    return max(unseen, key=original_tmr) if unseen else None


def choose_baselines(matchers, pairs: MatchingSet, target: float, image_size: int,
                     batch_size: int) -> dict:
    """The blur and pixelation strengths whose TMR@FMR=1% is closest to `target`."""
    _, matcher = matchers
    gallery = plugins.apply(matcher, pairs.images["original"], batch_size)
    embed = lambda faces: plugins.apply(matcher, faces, batch_size)  # noqa: E731
    chosen = {}
    for kind, transform in baselines_lib.BASELINES.items():
        def measure(strength, transform=transform):
            genuine, impostor = _scores(embed, transform(pairs.images["original"], strength),
                                        gallery, pairs)
            return metrics.tmr_at_fmr(genuine, impostor, FMRS[0])

        strength, value, history = baselines_lib.search_strength(
            measure, target, baselines_lib.strength_candidates(kind, image_size))
        logging.info("baseline %s: strength %g gives TMR@1%%FMR %.3f (target %.3f)", kind,
                     strength, value, target)
        chosen[kind] = {"parameter": "sigma" if kind == "blur" else "block",
                        "strength": float(strength), "tmr": value,
                        "search": [[float(s), v] for s, v in history]}
    return chosen


# ---------------------------------------------------------------------------------------------
# Orchestration.
# ---------------------------------------------------------------------------------------------


def fidelity_to_original(images: dict) -> dict:
    """`fidelity.fidelity` of each condition in `images` ({condition: [N, H, W, C]}) against
    `images["original"]`, the detector's hit rate among the originals it finds a face in."""
    found = fidelity.faces_found(images["original"])
    return {condition: fidelity.fidelity(images["original"], outputs, found)
            for condition, outputs in images.items() if condition != "original"}


def _training_notes(config: EvaluationConfig) -> list[str]:
    """Warns when the SAN's work dir recorded another data split than the one evaluated."""
    if not config.workdir:
        return []
    recorded = Path(config.workdir) / "config.json"
    if not recorded.exists():
        return []
    trained = json.loads(recorded.read_text()).get("data", {})
    keys = ("dataset", "seed", "validation_fraction", "test_fraction")
    differing = [k for k in keys if k in trained and trained[k] != getattr(config.data, k)]
    if not differing:
        return []
    note = (f"the SAN in {config.workdir} was trained with other data settings ({differing}): "
            "its training faces may overlap the test split evaluated here")
    logging.warning("%s", note)
    return [note]


class _Timer:
    def __init__(self):
        self.start = time.monotonic()

    def log(self, what: str) -> None:
        logging.info("evaluate: %s (%.0f s so far)", what, time.monotonic() - self.start)


def evaluate(config: EvaluationConfig) -> dict:
    """Runs the whole evaluation and writes its outputs; returns the metrics.

    Raises:
      ValueError / FileNotFoundError: naming the export, dataset or file that is unusable.
        Nothing is written to `output_dir` before the inputs have been checked.
    """
    timer = _Timer()
    perturber = Perturber(config.export)
    _check_shape(perturber, config.data)
    test = _read_test(config.data, config.max_examples)
    timer.log(f"perturbing {len(test['image'])} test faces")
    outputs = perturber(test["image"], test["male"], config.batch_size)
    pairs = matching_set(config, test, outputs, perturber)
    matcher_data = (dataclasses.replace(config.data, dataset=config.identity_dataset)
                    if config.identity_dataset else config.data)
    evaluators = gather_evaluators(config, matcher_data)
    classifiers = [(n, e) for n, e in evaluators if e.kind == "gender"]
    matchers = [(n, e) for n, e in evaluators if e.kind == "matcher"]
    notes = _training_notes(config)
    if not classifiers or not matchers:
        notes.append("no gender classifier or no matcher was available: give --workdir, keep "
                     "--independent or plug one in")

    gender_images = {"original": test["image"], **outputs}
    chosen, reference = {}, None
    timer.log("matching")
    matching, matching_curves = matching_section(matchers, pairs, config.batch_size)
    if config.baselines and matchers:
        reference = _reference_matcher(matchers, matching)
        if reference is None:
            notes.append("no baselines: every matcher here is seen by the SAN, and calibrating "
                         "on one would flatter it; plug in an unseen matcher")
    if reference is not None:
        target = matching[reference[0]]["conditions"]["opposite"]["tmr_at_fmr"][str(FMRS[0])]
        timer.log(f"searching baseline strengths against {reference[0]}")
        chosen = choose_baselines(reference, pairs, target, config.data.image_size,
                                  config.batch_size)
        for kind, choice in chosen.items():
            transform = baselines_lib.BASELINES[kind]
            gender_images[kind] = transform(test["image"], choice["strength"])
            probes = {kind: transform(pairs.images["original"], choice["strength"])}
            for name, matcher in matchers:
                entry, curve = matcher_conditions(matcher, pairs, probes, config.batch_size)
                matching[name]["conditions"].update(entry)
                matching_curves[name].update(curve)
    timer.log("gender classification")
    gender, gender_curves = gender_section(classifiers, gender_images, test["male"],
                                           config.batch_size)
    timer.log("fidelity")
    fidelity_section = fidelity_to_original(gender_images)
    identity_fidelity = {}
    if config.identity_dataset:  # Other photos than the gender test set's: in the wild, say.
        timer.log(f"fidelity on {config.identity_dataset}")
        identity_fidelity = {"dataset": config.identity_dataset,
                             "conditions": fidelity_to_original(pairs.images)}

    conditions = list(gender_images)
    result = {
        "export": str(perturber.path), "dataset": config.data.dataset,
        "examples": int(len(test["image"])),
        "gender_examples": int(metrics.known_gender(test["male"]).sum()),
        "prototype_labels": "ground truth where known, else the export's own gender CNN",
        "conditions": conditions,
        "gender": gender,
        "matching": {"dataset": pairs.dataset, "protocol": pairs.protocol,
                     "protocol_note": pairs.note, "similarity": SIMILARITY,
                     "conditions": conditions,
                     "probes": int(len(np.unique(pairs.genuine[:, 0]))),
                     "genuine_pairs": int(len(pairs.genuine)),
                     "impostor_pairs": int(len(pairs.impostor)), "matchers": matching},
        "fidelity": fidelity_section,
        "identity_fidelity": identity_fidelity,
        "baselines": ({"reference_matcher": reference[0], "target_tmr": target,
                       "chosen": chosen} if chosen else {}),
        "notes": notes,
        "config": dataclasses.asdict(config),
    }
    timer.log("writing the report")
    _write_outputs(config, result, gender_curves, matching_curves, gender_images)
    timer.log(f"done: {Path(config.output_dir) / 'report.md'}")
    return result


def _write_outputs(config, result, gender_curves, matching_curves, gender_images) -> None:
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, curves in gender_curves.items():
        file = f"roc_gender_{report.slug(name)}.png"
        report.plot_roc(output_dir / file, f"Gender: {name}", curves,
                        "false positive rate (female called male)", "true positive rate")
        files.append(file)
    for name, curves in matching_curves.items():
        file = f"roc_matching_{report.slug(name)}.png"
        report.plot_roc(output_dir / file, f"Matching: {name}", curves,
                        "false match rate", "true match rate", log_x=True)
        files.append(file)
    if config.grid_enabled:
        count = min(config.grid_faces, len(gender_images["original"]))
        report.plot_grid(output_dir / "grid.png",
                         {c: images[:count] for c, images in gender_images.items()})
        files.append("grid.png")
    result["files"] = ["metrics.json", "report.md"] + files
    report.write_json(output_dir / "metrics.json", result)
    report.write_text(output_dir / "report.md", report.markdown(result))
