"""TF Serving's `models.config` for an export base path: every model in it, by name."""

from __future__ import annotations

from pathlib import Path

from semiadv.export import locate
from semiadv.utils import files

MODELS_CONFIG = "models.config"


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def models_config_text(export_base):
    """The TF Serving `model_config_list` of every model (with a version) under export_base."""
    export_base = Path(export_base).resolve()
    entries = []
    for model_dir in sorted(export_base.iterdir()):
        served = not model_dir.name.startswith(".") and locate.existing_versions(model_dir)
        if model_dir.is_dir() and served:
            entries.append("  config {\n"
                           f"    name: {_quoted(model_dir.name)}\n"
                           f"    base_path: {_quoted(str(model_dir))}\n"
                           '    model_platform: "tensorflow"\n'
                           "  }\n")
    return "model_config_list {\n" + "".join(entries) + "}\n"


def write_models_config(export_base):
    """(Re)writes `export_base/models.config` atomically; returns its path.

    TF Serving may poll the file at any time: it reads the old list or the new one.
    """
    export_base = Path(export_base).resolve()
    path = export_base / MODELS_CONFIG
    files.write_text_atomically(path, models_config_text(export_base))
    return path
