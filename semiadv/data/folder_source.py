"""The `folder:PATH` source: photos labelled by `labels.csv` or by identity sub-folders.

Photos are aligned once into a cache folder first, unless the spec says `aligned=1`.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from absl import logging

from semiadv.config import DataConfig
from semiadv.data import attributes
from semiadv.data import cache
from semiadv.data import sources
from semiadv.data.specs import DatasetSpec
from semiadv.errors import UserValueError
from semiadv.utils import imageio


def load_source(spec: DatasetSpec, config: DataConfig) -> sources.Source:
    """The readable photos of a `folder:` spec, with the labels `labels.csv` or the folders give.

    A `labels.csv` in the spec's folder also labels its aligned copy.

    Raises:
      ValueError: naming the folder when it is missing, has neither `labels.csv` nor
        identity folders, or holds no usable photos; naming `labels.csv` when it lacks a column.
      UserValueError: naming `labels.csv`, the row and the value when an `age` or `race`
        cell is not a label (see `_optional_label`).
    """
    root = spec.path
    sources.require_folder(root)
    if not spec.aligned:
        root = aligned_copy(root, config)
    labels_file = root / "labels.csv"
    if not labels_file.exists() and spec.path and (spec.path / "labels.csv").exists():
        labels_file = spec.path / "labels.csv"
    if labels_file.exists():
        paths, labels, skipped = _read_labels_csv(labels_file, root)
    else:
        paths, labels, skipped = _read_identity_folders(root)
    if not paths:
        raise ValueError(f"no usable images in {spec.path} ({len(skipped)} skipped)")
    paths, labels, unreadable = sources.drop_unreadable(paths, labels)
    names = [str(Path(p).relative_to(root)) for p in paths]
    return sources.Source(names=names, skipped=tuple(skipped + unreadable), paths=paths,
                          **labels)


def _optional_label(row: dict, column: str, upper: int, where: str) -> int:
    """An optional `age` or `race` cell: -1 when the column or the cell is empty, or says -1.

    A cell that says something else than a whole number in [0, upper] stops the run: unlike a
    row without a gender (skipped: it cannot train), a typo here would silently become
    "unknown" for a label the user took the trouble to give.
    """
    text = (row.get(column) or "").strip()
    if not text:
        return attributes.UNKNOWN
    try:
        value = int(text)
    except ValueError:
        value = None
    if value != attributes.UNKNOWN and (value is None or not 0 <= value <= upper):
        raise UserValueError(f"{where}: {column} {text!r} is not a whole number in "
                             f"0..{upper} (or empty or -1 for unknown)")
    return value


def _read_labels_csv(labels_file: Path, root: Path):
    # utf-8-sig: a spreadsheet's byte order mark would otherwise hide the "file" column.
    with open(labels_file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "male"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{labels_file}: missing column(s) {sorted(missing)}; "
                             "want file,male[,identity][,age][,race]")
        paths, skipped = [], []
        labels = {"male": [], "identity": [], "age": [], "race": []}
        for row_number, row in enumerate(reader, start=2):
            where = f"{labels_file}:{row_number}"
            file = (row.get("file") or "").strip()
            age = _optional_label(row, "age", attributes.MAX_AGE, where)
            race = _optional_label(row, "race", len(attributes.RACE_NAMES) - 1, where)
            try:
                label = int((row.get("male") or "").strip())
                person = int((row.get("identity") or "-1").strip() or -1)
                if label not in (0, 1):
                    raise ValueError(f"male must be 0 or 1, got {label}")
            except ValueError as error:
                skipped.append((where, f"bad label in row {row}: {error}"))
                continue
            path = root / file
            if not file or not path.is_file():
                skipped.append((where, f"file {path} named in labels.csv does not exist"))
                continue
            paths.append(path)
            for name, value in (("male", label), ("identity", person), ("age", age),
                                ("race", race)):
                labels[name].append(value)
    return paths, labels, skipped


def _read_identity_folders(root: Path):
    folders = sorted(d for d in root.iterdir() if d.is_dir())
    if not folders:
        raise ValueError(f"{root} has neither labels.csv nor <identity>/ sub-folders of photos")
    paths, identity = [], []
    for number, folder in enumerate(folders):
        for file in imageio.list_images(folder, recursive=False):
            paths.append(file)
            identity.append(number)
    # Folders name identities but not genders: gender is unknown (-1) for these photos, and
    # so are their ages and races (the Source's defaults).
    return paths, {"male": [-1] * len(paths), "identity": identity}, []


def aligned_copy(root: Path, config: DataConfig) -> Path:
    """Aligns a folder of photos once into a cache folder and returns that folder.

    The cache key covers the folder, the size, the detector (and its revision: a detector
    whose crops changed aligns again) and every photo's name, size and mtime, so adding,
    replacing or removing a photo aligns the folder again instead of reusing a stale copy.
    The Haar detector adds nothing to the key, so caches made before detectors could be
    chosen stay valid.
    """
    # Imported here: only unaligned folder specs need the aligner and its detectors.
    from semiadv.align import folder as folder_alignment
    from semiadv.align import registry

    detector_key = "" if config.align_detector == "haar" else f"|detector={config.align_detector}"
    revision = registry.DETECTOR_REVISIONS[config.align_detector]
    if revision > 1:
        detector_key += f"@{revision}"
    fingerprint = hashlib.sha1(f"{root.resolve()}|{config.image_size}{detector_key}".encode())
    for file in imageio.list_images(root, recursive=True):
        stat = file.stat()
        fingerprint.update(f"|{file.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    key = fingerprint.hexdigest()[:12]
    base = Path(config.align_cache_dir or cache.cache_root() / "aligned")
    target = base / f"{root.name}-{config.image_size}-{key}"
    if not (target / folder_alignment.REPORT_NAME).exists():
        logging.info("Aligning the photos of %s into %s", root, target)
        folder_alignment.align_folder(root, target, config.image_size,
                                      detector_name=config.align_detector)
    return target
