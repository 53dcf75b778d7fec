"""The `utkface:PATH` source: labels read from UTKFace file names. No TensorFlow."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from absl import logging

from semiadv.data import attributes
from semiadv.data import sources
from semiadv.utils import imageio

# The UTKFace name: age_gender_race_date..., gender 0 = male, 1 = female. Real files have junk
# after the date (a space, a missing dot) and dates of 16 or 18 digits: what matters (age,
# gender, race) is there, so they are kept.
#
# A name must have all four fields, the gender 0 or 1 and the date digits: then the fields
# are where the format puts them and the gender is trusted, even when the age is not a number
# or the race is not one of the five codes (those become -1). A name missing a field (the
# three real ones lack the race: `39_1_20170116174525125...`) cannot say which field is
# missing, so which number is the gender is a guess: it is skipped.
_UTKFACE_NAME = re.compile(r"^(?P<age>[^_]*)_(?P<gender>[01])_(?P<race>[^_]*)_(?P<date>\d+)")


@dataclasses.dataclass(frozen=True)
class UtkfaceLabels:
    """What a UTKFace name says: male 1/0; age in years and race code, -1 where unreadable."""

    male: int
    age: int
    race: int


def parse_utkface_labels(name: str) -> UtkfaceLabels | None:
    """The labels in a UTKFace file name, or None when the name gives no trustworthy gender."""
    match = _UTKFACE_NAME.match(name)
    if match is None:
        return None
    age = int(match["age"]) if match["age"].isdecimal() else attributes.UNKNOWN
    race = int(match["race"]) if match["race"].isdecimal() else attributes.UNKNOWN
    return UtkfaceLabels(
        male=1 - int(match["gender"]),  # UTKFace: 0 = male.
        age=age if 0 <= age <= attributes.MAX_AGE else attributes.UNKNOWN,
        race=race if 0 <= race < len(attributes.RACE_NAMES) else attributes.UNKNOWN)


def parse_utkface_name(name: str) -> int | None:
    """Returns 1 for male, 0 for female, or None when the name is malformed."""
    labels = parse_utkface_labels(name)
    return None if labels is None else labels.male


def load_source(path: Path) -> sources.Source:
    """The photos directly in `path` whose names carry a gender and that are readable images.

    Raises:
      ValueError: naming `path` when it is not a folder, holds no images or no usable ones.
    """
    sources.require_folder(path)
    files = imageio.list_images(path, recursive=False)
    if not files:
        raise ValueError(f"no images in {path}")
    paths, labels, skipped, partial = [], [], [], []
    for file in files:
        parsed = parse_utkface_labels(file.name)
        if parsed is None:
            skipped.append((str(file), "malformed UTKFace name (want age_gender_race_date.jpg)"))
            continue
        if attributes.UNKNOWN in (parsed.age, parsed.race):
            partial.append(file.name)
        paths.append(file)
        labels.append(parsed)
    if partial:
        logging.warning("%s: %d name(s) with an unreadable age or race, kept with -1 for it, "
                        "e.g. %s", path, len(partial), partial[0])
    paths, columns, unreadable = sources.drop_unreadable(paths, {
        "male": [item.male for item in labels], "age": [item.age for item in labels],
        "race": [item.race for item in labels], "identity": [-1] * len(labels)})
    if not paths:
        raise ValueError(f"no usable images in {path} ({len(skipped) + len(unreadable)} skipped, "
                         f"e.g. {(skipped + unreadable)[0][0]})")
    return sources.Source(names=[Path(p).name for p in paths], skipped=tuple(skipped + unreadable),
                          paths=paths, **columns)
