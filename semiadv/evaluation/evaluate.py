"""`semiadv-evaluate`: judges an exported SAN the way the paper does, and against naive baselines.

For the original test faces and the SAN's same (SM), neutral (NT) and opposite (OP) outputs:

- gender: error rate and ROC-AUC of the auxiliary gender CNN and ensemble members (from a
  training work dir), of an independent residual classifier trained here on the `validation`
  split (a sibling of the auxiliary CNN: same data and size), of two classifiers from other
  families trained here too (`semiadv.evaluation.foreign`), and of any classifier plugged in
  (`semiadv.evaluation.plugins`, e.g. a Keras or ONNX file, `semiadv.evaluation.gender_file`;
  gathered by `semiadv.evaluation.evaluators`);
- matching: ROC, TMR at FMR 1% and 0.1% of the auxiliary matcher, an independent matcher and
  plugged-in matchers (e.g. an ONNX file, `semiadv.evaluation.onnx_matcher`), probe = output,
  gallery = the original of ANOTHER photo of the same person (or of the same photo when no
  identities exist, which the outputs say; `semiadv.evaluation.matching`);
- fidelity: SSIM, PSNR, CIELAB colour difference and the face detector's hit rate of each
  output against its original (`semiadv.evaluation.fidelity`), on the gender test faces and,
  with an identity dataset, on its photos too;
- baselines: Gaussian blur and pixelation at the strength that costs the strongest matcher the
  SAN never saw as much as the SAN's OP does, with their gender errors
  (`semiadv.evaluation.baselines`);
- attributes (issue #24), when the test faces label age or race: what each choice (the
  gender signatures and a choice export's hide_* signatures) hides and keeps, read by unseen
  age and race readers built here (`semiadv.evaluation.attribute_section`);
- whole photos (issue #23, `--whole_photos`): the photo files edited whole through the OP
  signature, faces re-detected and re-cropped at 1x and 2x (`semiadv.evaluation.whole_photos`);
- attackers, reported apart and never in the verdict: a gender classifier retrained on the
  SAN's OP outputs (it knows the SAN) and a linear probe from each matcher's embeddings to
  gender (`semiadv.evaluation.attackers`).

Every classifier and matcher is seen (the SAN trained against it: auxiliary networks,
ensemble members, plug-ins saying so), a sibling (the independent networks) or foreign
(another family or other data); the gender verdict reads only the foreign classifiers. Outputs in `output_dir`: metrics.json, report.md (a two-sentence verdict, then
the paper's two tables), ROC plots and, when asked, a grid of faces (with a choice export's
single-attribute choices and `hide_all` beside SM, NT and OP).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from absl import logging

from semiadv.evaluation import (attackers, attribute_readers, attribute_section, baselines,
                                evaluators, fidelity, matching, metrics, report, sampling,
                                whole_photos)
from semiadv.evaluation.config import EvaluationConfig
from semiadv.evaluation.gender_section import gender_section
from semiadv.evaluation.perturber import Perturber
from semiadv.export import choice_names


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


def per_attribute_section(config: EvaluationConfig, perturber: Perturber, test: dict,
                          outputs: dict, classifiers, matchers, pairs,
                          matching_metrics: dict) -> tuple[dict, dict]:
    """(the per-attribute section (`attribute_section`) or {"skipped": why}, {choice: the
    perturbed test faces} of the export's hide_* choices)."""
    if not attribute_section.labels_known(test):
        return {"skipped": f"No per-attribute evaluation: the test faces of {config.data.dataset} "
                           "label neither the age nor the race."}, {}
    readers = attribute_readers.attribute_readers(config.data, config.attributes,
                                                  config.eval_workdir)
    if not readers:
        return {"skipped": "No per-attribute evaluation: no attribute reader (enable "
                           "--attribute_hog or --attribute_cnn; the validation split must label "
                           "age or race)."}, {}
    choice_images = {"original": test["image"], **outputs}
    for name in perturber.choices:
        logging.info("attributes: perturbing %d test faces with %s", len(test["image"]), name)
        choice_images[name] = perturber.run(name, test["image"], config.batch_size)
    if pairs.images["original"] is test["image"]:
        identity_probes = choice_images
    else:  # Matching on other photos: they go through every choice too.
        identity_probes = {**pairs.images,
                           **{name: perturber.run(name, pairs.images["original"],
                                                  config.batch_size)
                              for name in perturber.choices}}
    section = attribute_section.attribute_section(
        choice_images, attribute_section.choice_hides(perturber.choices), test, readers,
        classifiers, matchers, pairs, identity_probes, config.batch_size,
        known_identity={name: {condition: values["tmr_at_fmr"][str(matching.FMRS[0])]
                               for condition, values in entry["conditions"].items()}
                        for name, entry in matching_metrics.items()})
    if not perturber.choices:
        section["note"] = attribute_section.NO_CHOICES_NOTE
    return section, {name: choice_images[name] for name in perturber.choices}


def grid_columns(gender_images: dict, choice_images: dict, choices: dict) -> dict:
    """grid.png's columns: the original, the gender conditions (and baselines), then the
    choices that hide one attribute and `hide_all`, the ones a user picks by name (the
    pairs would double the grid's width for little more to see)."""
    shown = {name: images for name, images in choice_images.items()
             if len(choices[name]) == 1 or name == choice_names.HIDE_ALL}
    return {**gender_images, **shown}


def _whole_photos(config: EvaluationConfig, perturber: Perturber, classifiers,
                  matchers) -> dict:
    """{set: the whole-photo section} of the test set and the identity set that are made of
    photo files (`whole_photos`)."""
    def perturb(crops):
        return perturber.run("opposite", crops, config.batch_size)

    sets = {config.data.dataset: config.data}
    if config.identity_dataset:
        sets[config.identity_dataset] = dataclasses.replace(config.data,
                                                            dataset=config.identity_dataset)
    section = {}
    for name, data in sets.items():
        paths, labels = whole_photos.read_photos(data, "test", config.whole_photos.max_photos)
        if not paths:
            section[name] = {"skipped": f"{name} is not made of photo files"}
            continue
        logging.info("whole photos: %d photos of %s", len(paths), name)
        section[name] = whole_photos.whole_photo_section(
            whole_photos.read_photo_files(paths), labels, perturb, data.image_size,
            data.channels, classifiers, matchers, config.batch_size,
            config.whole_photos.impostors_per_probe, config.seed)
    return section


class _Timer:
    """Logs each phase with the time since the evaluation started."""

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
    perturber.check_input_shape(config.data)
    test = matching.read_test_split(config.data, config.max_examples)
    timer.log(f"perturbing {len(test['image'])} test faces")
    outputs = perturber(test["image"], test["male"], config.batch_size)
    pairs = matching.matching_set(config, test, outputs, perturber)
    matcher_data = (dataclasses.replace(config.data, dataset=config.identity_dataset)
                    if config.identity_dataset else config.data)
    named = evaluators.gather_evaluators(config, matcher_data)
    classifiers = [(n, e) for n, e in named if e.kind == "gender"]
    matchers = [(n, e) for n, e in named if e.kind == "matcher"]
    notes = _training_notes(config)
    if not classifiers or not matchers:
        notes.append("no gender classifier or no matcher was available: give --workdir, keep "
                     "--independent or plug one in")

    gender_images = {"original": test["image"], **outputs}
    chosen, reference = {}, None
    timer.log("matching")
    matching_metrics, matching_curves = matching.matching_section(matchers, pairs,
                                                                  config.batch_size)
    if config.baselines and matchers:
        reference = baselines.reference_matcher(matchers, matching_metrics)
        if reference is None:
            notes.append("no baselines: every matcher here is seen by the SAN, and calibrating "
                         "on one would flatter it; plug in an unseen matcher")
    if reference is not None:
        fmr = str(matching.FMRS[0])
        target = matching_metrics[reference[0]]["conditions"]["opposite"]["tmr_at_fmr"][fmr]
        timer.log(f"searching baseline strengths against {reference[0]}")
        chosen = baselines.choose_baselines(reference, pairs, target, config.data.image_size,
                                            config.batch_size)
        for kind, choice in chosen.items():
            transform = baselines.BASELINES[kind]
            gender_images[kind] = transform(test["image"], choice["strength"])
            probes = {kind: transform(pairs.images["original"], choice["strength"])}
            for name, matcher in matchers:
                entry, curve = matching.matcher_conditions(matcher, pairs, probes,
                                                           config.batch_size)
                matching_metrics[name]["conditions"].update(entry)
                matching_curves[name].update(curve)
    timer.log("gender classification")
    gender, gender_curves = gender_section(classifiers, gender_images, test["male"],
                                           config.batch_size)
    attacker_section = {}
    if config.attackers.enabled:
        timer.log("attackers")
        attacker_section = attackers.attackers_section(
            config.attackers, perturber, config.data, config.foreign, config.eval_workdir,
            gender_images, test["male"], matchers, config.batch_size)
        if "skipped" in attacker_section:
            notes.append(attacker_section["skipped"])
    attributes_result, choice_images = {}, {}
    if config.attributes.enabled:
        timer.log("attributes")
        attributes_result, choice_images = per_attribute_section(
            config, perturber, test, outputs, classifiers, matchers, pairs, matching_metrics)
    whole_photo_result = {}
    if config.whole_photos.enabled:
        timer.log("whole photos")
        whole_photo_result = _whole_photos(config, perturber, classifiers, matchers)
    timer.log("fidelity")
    fidelity_section = fidelity.fidelity_to_original(gender_images)
    identity_fidelity = {}
    if config.identity_dataset:  # Other photos than the gender test set's: in the wild, say.
        timer.log(f"fidelity on {config.identity_dataset}")
        identity_fidelity = {"dataset": config.identity_dataset,
                             "conditions": fidelity.fidelity_to_original(pairs.images)}

    conditions = list(gender_images)
    result = {
        "export": str(perturber.path), "dataset": config.data.dataset,
        "examples": int(len(test["image"])),
        "gender_examples": int(metrics.known_gender(test["male"]).sum()),
        "prototype_labels": "ground truth where known, else the export's own gender CNN",
        "conditions": conditions,
        "gender": gender,
        "matching": {"dataset": pairs.dataset, "protocol": pairs.protocol,
                     "protocol_note": pairs.note, "similarity": matching.SIMILARITY,
                     "conditions": conditions,
                     "probes": int(len(np.unique(pairs.genuine[:, 0]))),
                     "genuine_pairs": int(len(pairs.genuine)),
                     "impostor_pairs": int(len(pairs.impostor)),
                     "matchers": matching_metrics},
        "fidelity": fidelity_section,
        "identity_fidelity": identity_fidelity,
        "baselines": ({"reference_matcher": reference[0], "target_tmr": target,
                       "chosen": chosen} if chosen else {}),
        "attackers": attacker_section,
        "attributes": attributes_result,
        "whole_photos": whole_photo_result,
        "notes": notes,
        "config": dataclasses.asdict(config),
    }
    timer.log("writing the report")
    grid_images = None
    if config.grid_enabled:
        count = min(config.grid_faces, len(gender_images["original"]))
        columns = grid_columns(gender_images, choice_images, perturber.choices)
        grid_images = {c: sampling.spread(images, count) for c, images in columns.items()}
    report.write_outputs(config.output_dir, result, gender_curves, matching_curves, grid_images)
    timer.log(f"done: {Path(config.output_dir) / 'report.md'}")
    return result
