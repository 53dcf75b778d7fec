"""Dataset specs: the strings `--dataset` takes, parsed.

  synthetic             the embedded procedurally drawn faces (no files, no download).
  utkface:PATH          UTKFace file names `age_gender_race_date.jpg.chip.jpg` (0 = male).
  folder:PATH           photos with `PATH/labels.csv` (file, male[, identity]) or the layout
                        `PATH/<identity>/*.jpg`; photos are aligned first unless the spec says
                        `folder:PATH?aligned=1`.
  celeb_a, lfw          through tensorflow-datasets.

No TensorFlow: flag validators and the preflight check parse specs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# Specs read through tensorflow-datasets rather than from files of our own.
TFDS_KINDS = ("celeb_a", "lfw")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec."""

    kind: str
    path: Path | None = None
    aligned: bool = True


def parse_spec(spec: str) -> DatasetSpec:
    """Parses `synthetic`, `utkface:PATH`, `folder:PATH[?aligned=1]`, `celeb_a` or `lfw`.

    Raises:
      ValueError: naming the spec when it is not one of those.
    """
    kind, _, rest = spec.partition(":")
    if kind in ("synthetic",) + TFDS_KINDS:
        if rest:
            raise ValueError(f"dataset spec {spec!r}: {kind} takes no path")
        return DatasetSpec(kind)
    if kind in ("utkface", "folder"):
        if not rest:
            raise ValueError(f"dataset spec {spec!r}: {kind} needs a path, e.g. {kind}:/data/faces")
        path, _, query = rest.partition("?")
        aligned = kind == "utkface"
        for option in filter(None, query.split("&")):
            name, _, value = option.partition("=")
            if name != "aligned" or value not in ("0", "1"):
                raise ValueError(f"dataset spec {spec!r}: unknown option {option!r} (use aligned=0|1)")
            aligned = value == "1"
        return DatasetSpec(kind, Path(path).expanduser(), aligned)
    raise ValueError(
        f"unknown dataset spec {spec!r}: use synthetic, utkface:PATH, folder:PATH, celeb_a or lfw")
