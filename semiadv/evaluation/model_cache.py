"""Where the evaluation keeps the networks it trains itself, so a rerun reuses them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from semiadv.config import DataConfig
from semiadv.utils import files

# DataConfig fields that say where data is cached and how much memory it may use: they do not
# change what a network learns, so they stay out of the key.
_NOT_LEARNT = ("cache", "cache_megabytes", "cache_dir", "align_cache_dir", "tfds_data_dir")


def cache_dir(eval_workdir: str | Path, prefix: str, kind: str, data_config: DataConfig,
              settings_name: str, settings: dict) -> Path:
    """`eval_workdir/<prefix>_<kind>-<digest>`: one folder per distinct (data, settings).

    Args:
      eval_workdir: the evaluation's work dir.
      prefix: the family of networks ("independent", "foreign").
      kind: the network within the family.
      data_config: what it learns from.
      settings_name, settings: how it is built and trained, under that name in the key.
    """
    data = dataclasses.asdict(data_config)
    for ignored in _NOT_LEARNT:
        data.pop(ignored, None)
    key = {"kind": kind, "data": data, settings_name: settings}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return Path(eval_workdir) / f"{prefix}_{kind}-{digest}"


def write_config(directory: Path, kind: str, split: str, data_config: DataConfig,
                 settings_name: str, settings: dict) -> None:
    """`directory/config.json`: what the cached network was trained from, for people."""
    files.write_json_atomically(
        directory / "config.json",
        {"kind": kind, "split": split, "data": dataclasses.asdict(data_config),
         settings_name: settings}, sort_keys=True)
