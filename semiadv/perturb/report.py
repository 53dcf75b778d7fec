"""perturb_report.json, the report semiadv-perturb and semiadv-beam-perturb both write.

No TensorFlow: the Beam pipeline's driver imports this (its workers load TensorFlow).
"""

from __future__ import annotations

REPORT_NAME = "perturb_report.json"
# Photos per call of the signature, in both jobs.
DEFAULT_BATCH_SIZE = 32
# Statuses that are not failures: "already_written" is a rerun of the Beam pipeline finding
# the output of an earlier run.
DONE_STATUSES = ("perturbed", "already_written")


def new_report(export, prototype, image_shape, input_dir, align, skipped_existing=0, files=None,
               **extra):
    """A report before `finish_report`.

    Args:
        export: The SavedModel dir used.
        prototype: The signature used.
        image_shape: The export's (H, W, C).
        input_dir: The folder the relative names are relative to.
        align: Whether faces were detected and aligned.
        skipped_existing: Photos skipped because their output existed.
        files: {relative name: entry} so far (default: none).
        **extra: More top-level fields (the Beam pipeline's `input_pattern`).
    """
    return {"export": str(export), "prototype": prototype, "image_shape": list(image_shape),
            "input_dir": str(input_dir), "align": bool(align),
            "skipped_existing": skipped_existing, "files": {} if files is None else files,
            **extra}


def finish_report(report):
    """Adds "counts" per status and "failed" (names neither perturbed nor already done)."""
    counts = {}
    for entry in report["files"].values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    report["counts"] = counts
    report["failed"] = sorted(relative for relative, entry in report["files"].items()
                              if entry["status"] not in DONE_STATUSES)
    return report
