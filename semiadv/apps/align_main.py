"""semiadv-align: detects, aligns and crops the faces of a folder of photos.

  semiadv-align --input_dir=photos --output_dir=aligned --image_size=64 [--detector=dlib|haar]

Writes one crop per photo (same relative path and name) and `align_report.json` with each
photo's status: aligned (eyes found; `eyes_from` says by landmarks or eye cascades),
fallback (face box only) or no_face / unreadable.
"""

import json
import sys

from absl import flags

from semiadv.apps import cli, common_flags  # common_flags defines --image_size.
from semiadv.align import folder, registry
from semiadv.apps import preflight
from semiadv.errors import UserValueError

flags.declare_key_flag("image_size")
INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of photos (searched recursively).",
                                required=True)
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write crops and the report.",
                                 required=True)
WORKERS = flags.DEFINE_integer("workers", None, "Threads aligning photos (default: one per "
                               "core).", lower_bound=1)
DETECTOR = flags.DEFINE_enum(
    "detector", None, list(registry.DETECTORS),
    "Face detector: dlib (dlib's HOG faces and 5-point landmarks, Haar as fallback; needs "
    "pip install -e \".[dlib]\"), mediapipe (MediaPipe's BlazeFace faces and eye keypoints; needs "
    "pip install -e \".[mediapipe]\") or haar (OpenCV's Haar cascades). Default: the first "
    "installed of mediapipe, dlib, haar (docs/alignment.md).")


def main(argv):
    del argv
    try:  # A flag's own mistake first, before the folders are looked at.
        registry.set_default_detector(DETECTOR.value)
    except ImportError as error:
        raise UserValueError(f"--detector={DETECTOR.value}: {error}") from None
    preflight.folders(INPUT_DIR.value, OUTPUT_DIR.value)
    report = folder.align_folder(INPUT_DIR.value, OUTPUT_DIR.value, common_flags.IMAGE_SIZE.value,
                                 workers=WORKERS.value)
    counts = report["counts"]
    print(json.dumps(counts))
    # Every photo without a crop is listed at the end, so none goes missing unnoticed.
    for relative, entry in report["files"].items():
        if entry["status"] not in ("aligned", "fallback"):
            print(f"{relative}: {entry['status']} {entry.get('error', '')}".rstrip(), file=sys.stderr)
    cropped = counts.get("aligned", 0) + counts.get("fallback", 0)
    # Batch jobs go on past bad files; only a run that produced nothing fails.
    if cropped == 0:
        print(f"no face could be cropped from {INPUT_DIR.value}", file=sys.stderr)
        return 1
    print(f"crops: {OUTPUT_DIR.value}; report: {OUTPUT_DIR.value}/align_report.json")
    return 0


def run():
    cli.run(main, "semiadv-align", key_flag_modules=(sys.modules[__name__],))


if __name__ == "__main__":
    run()
