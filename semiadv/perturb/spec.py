"""What semiadv-perturb and semiadv-beam-perturb share, without TensorFlow.

The signatures' names, the defaults, the report's format and finding the SavedModel in a
local export folder. `semiadv.perturb.folder` (which needs TensorFlow) re-exports all of it;
the Beam pipeline's driver imports only this, so it never loads TensorFlow (its workers do).
"""

from __future__ import annotations

from pathlib import Path

from semiadv.prototypes.kinds import KINDS

PROTOTYPES = KINDS
REPORT_NAME = "perturb_report.json"
DEFAULT_BATCH_SIZE = 32
# Statuses that are not failures: "already_written" is a rerun of the Beam pipeline
# (`semiadv.perturb.beam`) finding the output of an earlier run.
DONE_STATUSES = ("perturbed", "already_written")


def no_saved_model_error(where) -> FileNotFoundError:
    return FileNotFoundError(f"no SavedModel (saved_model.pb) in {str(where)!r} or in its "
                             "integer version sub-folders")


def resolve_local_export(export_path) -> Path:
    """The SavedModel dir of a local `export_path`: a version dir, or a model dir (its
    highest integer version holding a saved_model.pb).

    Raises:
        FileNotFoundError: naming the path when it holds no SavedModel.
    """
    path = Path(export_path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((int(child.name) for child in path.iterdir()
                       if child.is_dir() and child.name.isdigit()), reverse=True) \
        if path.is_dir() else []
    for version in versions:
        if (path / str(version) / "saved_model.pb").is_file():
            return path / str(version)
    raise no_saved_model_error(path)


def finish_report(report):
    """Adds "counts" per status and "failed" (names neither perturbed nor already done)."""
    counts = {}
    for entry in report["files"].values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    report["counts"] = counts
    report["failed"] = sorted(relative for relative, entry in report["files"].items()
                              if entry["status"] not in DONE_STATUSES)
    return report
