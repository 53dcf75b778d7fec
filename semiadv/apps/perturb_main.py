"""semiadv-perturb: hides the gender of the faces in a folder of photos with an export.

  semiadv-perturb --export=exports/san --input_dir=photos --output_dir=private \
      --prototype=opposite [--save_aligned] [--noalign] [--detector=dlib|haar]

Writes each perturbed face under its relative name, plus perturb_report.json. Exits
non-zero only when no photo could be perturbed.
"""

import json
import os
import sys

# TensorFlow's C++ start-up chatter buries the binary's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

EXPORT = flags.DEFINE_string("export", None, "Export version dir, or model dir (latest version).",
                             required=True)
INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of photos (searched recursively).",
                                required=True)
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where perturbed photos and the report go.",
                                 required=True)
PROTOTYPE = flags.DEFINE_enum("prototype", "opposite", ["opposite", "same", "neutral"],
                              "Which prototype the faces are re-rendered with.")
SAVE_ALIGNED = flags.DEFINE_bool("save_aligned", False,
                                 "Also write the aligned originals to OUTPUT_DIR/aligned/.")
ALIGN = flags.DEFINE_bool("align", True, "Detect and align faces; --noalign only resizes.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Photos per model call.", lower_bound=1)
WORKERS = flags.DEFINE_integer("workers", None, "Threads reading and aligning photos "
                               "(default: one per core).", lower_bound=1)
# Listed here, not imported from semiadv.align: the binary's --help should not load OpenCV.
DETECTOR = flags.DEFINE_enum(
    "detector", None, ["haar", "dlib"],
    "Face detector: dlib (dlib's HOG faces and 5-point landmarks, Haar as fallback; needs "
    "pip install -e \".[dlib]\") or haar (OpenCV's Haar cascades). Default: dlib if installed, "
    "else haar.")


def main(argv):
    del argv
    if ALIGN.value:
        from semiadv import align

        try:
            # perturb_folder aligns with the default detector: the flag sets it.
            align.set_default_detector(DETECTOR.value)
        except ImportError as error:
            print(f"--detector={DETECTOR.value}: {error}", file=sys.stderr)
            return 2
    from semiadv import perturb

    report = perturb.perturb_folder(
        EXPORT.value, INPUT_DIR.value, OUTPUT_DIR.value, prototype=PROTOTYPE.value,
        save_aligned=SAVE_ALIGNED.value, align=ALIGN.value, batch_size=BATCH_SIZE.value,
        workers=WORKERS.value)
    print(json.dumps(report["counts"]))
    for relative in report["failed"]:
        entry = report["files"][relative]
        print(f"{relative}: {entry['status']} {entry.get('error', '')}".rstrip(), file=sys.stderr)
    # Batch jobs go on past bad files; only a run that produced nothing fails.
    if not report["counts"].get("perturbed"):
        print(f"no photo could be perturbed from {INPUT_DIR.value}", file=sys.stderr)
        return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
