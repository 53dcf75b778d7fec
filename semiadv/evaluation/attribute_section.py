"""What each choice hides and keeps (issue #24): age group, race, age and gender per choice.

A *choice* is one way of running the export: the originals, the gender signatures (`same`
keeps everything, `neutral` and `opposite` hide gender) and, in a choice-conditioned export,
every `hide_*` signature (`hide_gender`, `hide_age`, `hide_race`, their pairs, `hide_all`).
For each, on the test faces:

- the unseen attribute readers (`attribute_readers`): balanced accuracy of the age group and
  of the race (the mean of the per-class recalls: chance = 1 / classes whatever the class
  balance), the age's mean absolute error in years;
- the foreign gender classifiers' error;
- identity (each matcher's TMR at FMR 1%) and fidelity (SSIM, ΔE*ab) of the outputs;
- the targets of issue #24, met or missed: a hidden attribute's balanced accuracy within 5
  points of chance (gender: error >= 40%); a kept one within 3 points of the originals'
  (gender: error within 3 points; age: MAE within 1 year).
"""

from __future__ import annotations

import numpy as np
from absl import logging

from semiadv.evaluation import attribute_readers, evaluators, fidelity, matching, metrics
from semiadv.evaluation.gender_section import gender_section

# What each gender signature hides (the attribute names of `config.HIDEABLE_ATTRIBUTES`).
GENDER_CHOICES = {"same": (), "neutral": ("gender",), "opposite": ("gender",)}
HIDDEN_MARGIN = 0.05  # A hidden class attribute: balanced accuracy <= chance + 5 points.
HIDDEN_GENDER_ERROR = 0.40  # A hidden gender: error >= 40%.
KEPT_MARGIN = 0.03  # A kept attribute: within 3 points of the originals'.
KEPT_AGE_YEARS = 1.0  # A kept age: MAE within 1 year of the originals'.
NO_CHOICES_NOTE = ("This export has no attribute signatures (hide_gender, hide_age, "
                   "hide_race, hide_all): only the originals and the gender signatures are "
                   "scored.")


def balanced_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in `labels` (>= 0) of the share predicted right; NaN when
    no label is known."""
    known = labels >= 0
    if not known.any():
        return float("nan")
    predicted = np.argmax(probabilities[known], axis=1)
    truth = labels[known]
    return float(np.mean([np.mean(predicted[truth == value] == value)
                          for value in np.unique(truth)]))


def mean_absolute_error(ages: np.ndarray, labels: np.ndarray) -> float:
    """Mean |predicted - true| age in years over the known ages (NaN if none)."""
    known = labels >= 0
    return float(np.mean(np.abs(ages[known] - labels[known]))) if known.any() else float("nan")


def _reader_metrics(reader, images: np.ndarray, labels: dict, batch_size: int) -> dict:
    read = reader(images, batch_size)
    entry = {}
    for name in reader.attributes:
        if name == attribute_readers.AGE:
            entry["age_mae"] = mean_absolute_error(read[name], labels[name])
        else:
            entry[f"{name}_balanced_accuracy"] = balanced_accuracy(read[name], labels[name])
    return entry


def _target(hidden: bool, key: str, value: float, original: float) -> dict | None:
    """{"target", "met", "by"} of one measurement, or None when it has none (an age MAE of a
    hidden age: the age group's accuracy is its target) or cannot be judged (NaN)."""
    if value is None or original is None or np.isnan(value) or np.isnan(original):
        return None
    if key == "age_mae":
        if hidden:
            return None
        limit = original + KEPT_AGE_YEARS
        return {"target": f"<= {limit:.1f} years", "met": bool(value <= limit),
                "by": float(value - limit)}
    if key == "gender_error":
        if hidden:
            return {"target": f">= {HIDDEN_GENDER_ERROR:.0%}",
                    "met": bool(value >= HIDDEN_GENDER_ERROR),
                    "by": float(HIDDEN_GENDER_ERROR - value)}
        limit = original + KEPT_MARGIN
        return {"target": f"<= {limit:.1%}", "met": bool(value <= limit),
                "by": float(value - limit)}
    classes = attribute_readers.CLASSES[key.replace("_balanced_accuracy", "")]
    if hidden:
        limit = 1.0 / classes + HIDDEN_MARGIN
        return {"target": f"<= {limit:.1%} (chance {1 / classes:.1%} + 5)",
                "met": bool(value <= limit), "by": float(value - limit)}
    limit = original - KEPT_MARGIN
    return {"target": f">= {limit:.1%}", "met": bool(value >= limit), "by": float(limit - value)}


def _attribute_of(key: str) -> str:
    if key == "gender_error":
        return "gender"
    if key == "age_mae":
        return "age_group"  # Hiding the age group hides the age.
    return key.replace("_balanced_accuracy", "")


def attribute_section(choice_images: dict, hides: dict, labels: dict, readers,
                      gender_classifiers, matchers, pairs, identity_probes: dict,
                      batch_size: int, known_identity: dict | None = None) -> dict:
    """The per-choice table.

    Args:
      choice_images: {choice: test faces [N, H, W, C]}, "original" first.
      hides: {choice: the attributes it hides ("gender", "age_group", "race")}.
      labels: the test faces' labels ("male", "age", "age_group", "race"; -1 unknown).
      readers: `attribute_readers.AttributeReader`s.
      gender_classifiers: (name, classifier) pairs; only the foreign ones are read.
      matchers: (name, matcher) pairs for the identity column (may be empty).
      pairs: the evaluation's `matching.MatchingSet`, or None without matchers.
      identity_probes: {choice: the matching probes perturbed by that choice}.
      batch_size: faces per call.
      known_identity: {matcher name: {choice: TMR@FMR1%}} already measured (the matching
        section's originals and gender signatures): a plug-in matcher re-aligns every face
        (~20-50 ms), so those are not embedded twice.

    Returns:
      {"choices": {choice: {"hides", "readers": {name: metrics}, "gender": {name: error},
       "identity": {name: TMR@FMR1%}, "fidelity": {...}, "targets": {...}}},
       "readers": {name: family and attributes}, "gender_classifiers": [...],
       "matchers": [...]}.
    """
    foreign_gender = [(name, classifier) for name, classifier in gender_classifiers
                      if evaluators.relation(classifier) == "foreign"]
    gender, _ = gender_section(foreign_gender, choice_images, labels["male"], batch_size)
    # SSIM and ΔE only: `fidelity.fidelity_to_original` would also run the face detector on
    # every choice's faces, seconds per thousand, for a column this table does not show.
    originals = choice_images["original"]
    quality = {choice: {"ssim": metrics.mean_quality(originals, images)["ssim"],
                        "delta_e": float(fidelity.mean_delta_e(originals, images).mean())}
               for choice, images in choice_images.items() if choice != "original"}
    identity = {}
    for name, matcher in matchers:
        known = dict((known_identity or {}).get(name, {}))
        probes = {choice: images for choice, images in identity_probes.items()
                  if choice not in known}
        logging.info("attributes: identity under %s (%d choices)", name, len(probes))
        entry, _ = (matching.matcher_conditions(matcher, pairs, probes, batch_size) if probes
                    else ({}, {}))
        identity[name] = {**known, **{choice: entry[choice]["tmr_at_fmr"][str(matching.FMRS[0])]
                                      for choice in entry}}
    choices = {}
    for choice, images in choice_images.items():
        logging.info("attributes: %s", choice)
        entry = {"hides": list(hides.get(choice, ())),
                 "readers": {reader.name: _reader_metrics(reader, images, labels, batch_size)
                             for reader in readers},
                 "gender": {name: gender[name]["conditions"][choice]["error_rate"]
                            for name in gender},
                 "identity": {name: identity[name][choice] for name in identity},
                 "fidelity": quality.get(choice, {})}
        choices[choice] = entry
    for choice, entry in choices.items():
        if choice == "original":
            continue
        targets = {}
        for reader, values in entry["readers"].items():
            for key, value in values.items():
                verdict = _target(_attribute_of(key) in entry["hides"], key, value,
                                  choices["original"]["readers"][reader][key])
                if verdict:
                    targets[f"{reader}: {key}"] = verdict
        for name, value in entry["gender"].items():
            verdict = _target("gender" in entry["hides"], "gender_error", value,
                              choices["original"]["gender"][name])
            if verdict:
                targets[f"{name}: gender_error"] = verdict
        entry["targets"] = targets
    return {"choices": choices,
            "readers": {reader.name: {"family": reader.family, "relation": reader.relation,
                                      "attributes": list(reader.attributes)}
                        for reader in readers},
            "gender_classifiers": [name for name, _ in foreign_gender],
            "matchers": [name for name, _ in matchers],
            "matcher_relations": {name: evaluators.relation(matcher) for name, matcher in matchers},
            "chance": {name: 1.0 / classes
                       for name, classes in attribute_readers.CLASSES.items()},
            "examples": {name: int((labels[name] >= 0).sum())
                         for name in ("age_group", "race", "age", "male")}}


def choice_hides(choices: dict) -> dict:
    """{choice: hidden attributes} of the originals, the gender signatures and `choices`
    (a `Perturber.choices`)."""
    return {"original": (), **GENDER_CHOICES, **{name: tuple(hidden)
                                                  for name, hidden in choices.items()}}


def labels_known(labels: dict) -> bool:
    """Whether the test faces label the age group or the race on two values at least."""
    return any(len(np.unique(labels[name][labels[name] >= 0])) >= 2
               for name in attribute_readers.CLASSES)
