"""The `utkface:PATH` source: labels read from UTKFace file names. No TensorFlow."""

from __future__ import annotations

import re
from pathlib import Path

from semiadv.data import sources
from semiadv.utils import imageio

# The UTKFace name: age_gender_race_date..., gender 0 = male, 1 = female. Real files have junk
# after the date (a space, a missing dot) and dates of 16 or 18 digits: what matters (age,
# gender, race) is there, so they are kept. Names without the race field are skipped.
_UTKFACE_NAME = re.compile(r"^(?P<age>\d+)_(?P<gender>[01])_(?P<race>[0-4])_(?P<date>\d+)")


def parse_utkface_name(name: str) -> int | None:
    """Returns 1 for male, 0 for female, or None when the name is malformed."""
    match = _UTKFACE_NAME.match(name)
    if match is None:
        return None
    return 1 - int(match["gender"])  # UTKFace: 0 = male.


def load_source(path: Path) -> sources.Source:
    """The photos directly in `path` whose names carry a gender and that are readable images.

    Raises:
      ValueError: naming `path` when it is not a folder, holds no images or no usable ones.
    """
    sources.require_folder(path)
    files = imageio.list_images(path, recursive=False)
    if not files:
        raise ValueError(f"no images in {path}")
    paths, male, skipped = [], [], []
    for file in files:
        label = parse_utkface_name(file.name)
        if label is None:
            skipped.append((str(file), "malformed UTKFace name (want age_gender_race_date.jpg)"))
            continue
        paths.append(file)
        male.append(label)
    paths, male, identity, unreadable = sources.drop_unreadable(paths, male, [-1] * len(paths))
    if not paths:
        raise ValueError(f"no usable images in {path} ({len(skipped) + len(unreadable)} skipped, "
                         f"e.g. {(skipped + unreadable)[0][0]})")
    return sources.Source(male=male, identity=identity, names=[Path(p).name for p in paths],
                          skipped=tuple(skipped + unreadable), paths=paths)
