"""semiadv-perturb: hides the gender of the faces in a folder of photos with an export.

  semiadv-perturb --export=exports/san --input_dir=photos --output_dir=private \
      [--prototype=opposite | --hide=gender,age] [--output=photo|crop] [--max_faces=16]
      [--keep_metadata]
      [--jpeg_quality=95] [--save_aligned] [--noalign] [--overwrite]
      [--detector=dlib|haar|mediapipe] [--workers=N] [--pool=process|thread]

Writes each photo with its faces perturbed (or each perturbed face crop, --output=crop) under
its relative name, plus perturb_report.json, and says where they went. Photos whose output
exists already (from an earlier run) are skipped, and counted, unless --overwrite. Exits non-zero only when no photo could be perturbed.
"""

import json
import sys
from pathlib import Path

from absl import flags

from semiadv.apps import cli
from semiadv.apps import preflight
from semiadv.errors import UserValueError

EXPORT = flags.DEFINE_string("export", None, "Export version dir, or model dir (latest version).",
                             required=True)
INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of photos (searched recursively).",
                                required=True)
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where perturbed photos and perturb_report.json go: not --input_dir "
    "nor a folder containing it (a sub-folder of it is fine).", required=True)
PROTOTYPE = flags.DEFINE_enum("prototype", "opposite", ["opposite", "same", "neutral"],
                              "Which prototype the faces are re-rendered with.")
HIDE = flags.DEFINE_string(
    "hide", None,
    "What to hide, with an export of a choice-conditioned SAN (trained with "
    "--hide_attributes): a comma-separated list of gender, age, race, or all; the rest of "
    "the face's attributes are kept. Uses the export's hide_* signature; not with "
    "--prototype.")
SAVE_ALIGNED = flags.DEFINE_bool("save_aligned", False,
                                 "Also write the aligned originals to OUTPUT_DIR/aligned/.")
ALIGN = flags.DEFINE_bool("align", True, "Detect and align faces; --noalign only resizes "
                          "(already aligned crops; implies --output=crop).")
OUTPUT = flags.DEFINE_enum(
    "output", None, ["photo", "crop"],
    "What is written: photo (the whole photo at its own size and format, every face edited, "
    "the rest of the photo untouched; default when aligning) or crop (the aligned crop of "
    "the largest face at the export's size; default with --noalign).")
MAX_FACES = flags.DEFINE_integer("max_faces", 16, "Photo output: the most faces edited per "
                                 "photo, largest first.", lower_bound=1)
KEEP_METADATA = flags.DEFINE_bool(
    "keep_metadata", False, "Photo output: copy the input's EXIF (orientation set upright, "
    "thumbnail removed), XMP, IPTC, comments and PNG text chunks. By default outputs carry "
    "only the ICC colour profile: EXIF holds GPS positions and camera serial numbers.")
JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "Quality of JPEG outputs.",
                                    lower_bound=1, upper_bound=100)
OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Perturb photos whose output exists already (from an earlier run) "
    "again; by default they are skipped and counted.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Photos per model call.", lower_bound=1)
WORKERS = flags.DEFINE_integer("workers", None, "Photos read and aligned in parallel: the "
                               "number of --pool threads or processes (default: one per core).",
                               lower_bound=1)
# Listed here, not imported from semiadv.perturb.folder: the binary's --help should not load TensorFlow.
POOL = flags.DEFINE_enum(
    "pool", "thread", ["thread", "process"],
    "Where photos are read, decoded and aligned: thread (threads of this process, sharing its "
    "CPU with TensorFlow's thread pools) or process (worker processes that never import "
    "TensorFlow; about a second of CPU to start each). Same outputs and report.")
# Listed here, not imported from semiadv.align.registry: the binary's --help should not load OpenCV.
DETECTOR = flags.DEFINE_enum(
    "detector", None, ["haar", "dlib", "mediapipe"],
    "Face detector: dlib (dlib's HOG faces and 5-point landmarks, Haar as fallback; needs "
    "pip install -e \".[dlib]\"), mediapipe (MediaPipe's BlazeFace faces and eye keypoints; needs "
    "pip install -e \".[mediapipe]\") or haar (OpenCV's Haar cascades). Default: the first "
    "installed of mediapipe, dlib, haar (docs/alignment.md).")


def _signature():
    """The export's signature to use: --prototype's, or the hide_* one of --hide, checked
    to be in the export (a user error naming the flag otherwise)."""
    if HIDE.value is None:
        return PROTOTYPE.value
    if flags.FLAGS["prototype"].present:
        raise UserValueError("--hide and --prototype choose the same thing: give one")
    from semiadv.export import choice_names, locate

    name = choice_names.signature_name(choice_names.parse_hide(HIDE.value))
    # One line, before any photo is read: the saved_model.pb alone says what it serves.
    locate.image_shape(locate.read_signature_shapes(locate.resolve_export(EXPORT.value)),
                       EXPORT.value, name)
    return name


def main(argv):
    del argv
    if ALIGN.value:  # A flag's own mistake first, before the folders are looked at.
        from semiadv.align import registry

        try:
            # perturb_folder aligns with the default detector: the flag sets it.
            registry.set_default_detector(DETECTOR.value)
        except ImportError as error:
            raise UserValueError(f"--detector={DETECTOR.value}: {error}") from None
    output = OUTPUT.value or ("photo" if ALIGN.value else "crop")
    if output == "photo" and not ALIGN.value:
        raise UserValueError("--output=photo needs faces found: drop --noalign, or use "
                             "--output=crop for already aligned crops")
    if KEEP_METADATA.value and output != "photo":
        raise UserValueError("--keep_metadata applies to --output=photo only (crops are "
                             "written without metadata)")
    preflight.folders(INPUT_DIR.value, OUTPUT_DIR.value)
    preflight.export(EXPORT.value)
    signature = _signature()
    from semiadv.perturb import folder as perturb
    from semiadv.perturb import report as perturb_report

    report = perturb.perturb_folder(
        EXPORT.value, INPUT_DIR.value, OUTPUT_DIR.value, prototype=signature,
        save_aligned=SAVE_ALIGNED.value, align=ALIGN.value, batch_size=BATCH_SIZE.value,
        workers=WORKERS.value, overwrite=OVERWRITE.value, pool=POOL.value, output=output,
        max_faces=MAX_FACES.value, keep_metadata=KEEP_METADATA.value,
        jpeg_quality=JPEG_QUALITY.value)
    counts = report["counts"]
    if counts:
        print(json.dumps(counts))
    for relative in report["failed"]:
        entry = report["files"][relative]
        print(f"{relative}: {entry['status']} {entry.get('error', '')}".rstrip(), file=sys.stderr)
    output = Path(OUTPUT_DIR.value)
    skipped = report.get("skipped_existing", 0)
    if skipped:
        print(f"skipped {skipped} photo(s) whose output exists already in {output} (from an "
              "earlier run); --overwrite perturbs them again")
    if not counts.get("perturbed"):
        if skipped and not report["failed"]:
            return 0  # Everything was done by an earlier run.
        # Batch jobs go on past bad files; only a run that produced nothing fails.
        print(f"no photo could be perturbed from {INPUT_DIR.value}", file=sys.stderr)
        return 1
    if report.get("output") == "photo":
        edited = sum(entry.get("faces", 0) for entry in report["files"].values())
        print(f"perturbed {edited} face(s) in {counts['perturbed']} photo(s) into {output}"
              + (f" (aligned originals in {output / 'aligned'})" if SAVE_ALIGNED.value else ""))
        if counts.get("no_face"):
            print(f"{counts['no_face']} photo(s) without a face found were not written (an "
                  "unedited photo is not passed on); the report lists them")
    else:
        print(f"perturbed {counts['perturbed']} photo(s) into {output}"
              + (f" (aligned originals in {output / 'aligned'})" if SAVE_ALIGNED.value else ""))
    print(f"report: {output / perturb_report.REPORT_NAME}")
    return 0


def run():
    cli.run(main, "semiadv-perturb", key_flag_modules=(sys.modules[__name__],))


if __name__ == "__main__":
    run()
