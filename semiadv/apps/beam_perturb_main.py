"""semiadv-beam-perturb: `semiadv-perturb` as an Apache Beam pipeline, for collections at scale.

  semiadv-beam-perturb --export=exports/san --input_pattern='photos/**' \
      --output_dir=private --prototype=opposite [--output=photo|crop] [--max_faces=16] \
      [--keep_metadata] [--jpeg_quality=95] [--noalign] [--batch_size=32] \
      [Beam options: --runner, --direct_num_workers, --direct_running_mode, --project, ...]

The pipeline is `semiadv.perturb.beam`. Prints the report's counts and each failed photo.
Exits 1 only when nothing could be perturbed, 2 for user errors. Its flags are argparse's,
not absl's: everything it does not know is a Beam pipeline option.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from apache_beam.options.pipeline_options import PipelineOptions

from semiadv.perturb import outputs
from semiadv.perturb import report as perturb_report
from semiadv.perturb.beam import config as beam_config
from semiadv.perturb.beam import pipeline
from semiadv.prototypes.kinds import KINDS


def build_parser():
    """The binary's own flags; `main` passes every other argument to Beam."""
    parser = argparse.ArgumentParser(
        prog="semiadv-beam-perturb",
        description="Hide the gender of the faces in a collection of photos with an export, "
                    "as an Apache Beam pipeline. Other arguments are Beam pipeline options "
                    "(--runner, --direct_num_workers, --project, ...).")
    parser.add_argument("--export", required=True,
                        help="Export version dir, or model dir (latest version); any path "
                             "TensorFlow reads (local, gs://).")
    parser.add_argument("--input_pattern", required=True,
                        help="Beam file pattern of the photos, e.g. 'photos/**' or "
                             "'gs://bucket/photos/**/*.jpg' ('**' crosses folders; a folder "
                             "means every file under it). Outputs are named relative to "
                             "the folder before the first wildcard.")
    parser.add_argument("--output_dir", required=True,
                        help="Where perturbed photos and perturb_report.json go (any Beam "
                             "filesystem).")
    parser.add_argument("--prototype", default=None, choices=KINDS,
                        help="Which prototype the faces are re-rendered with (default: "
                             "opposite).")
    parser.add_argument("--hide", default=None,
                        help="What to hide, with an export of a choice-conditioned SAN "
                             "(--hide_attributes): a comma-separated list of gender, age, "
                             "race, or all; the rest is kept. Not with --prototype.")
    parser.add_argument("--noalign", dest="align", action="store_false",
                        help="Only resize the photos (already aligned crops; implies "
                             "--output=crop); default: detect and align faces.")
    parser.add_argument("--output", choices=outputs.OUTPUTS, default=None,
                        help="photo: the whole photo at its own size and format, every face "
                             "edited, the rest untouched (default when aligning); crop: the "
                             "aligned crop of the largest face (default with --noalign).")
    parser.add_argument("--max_faces", type=int, default=outputs.DEFAULT_MAX_FACES,
                        help="Photo output: the most faces edited per photo, largest first.")
    parser.add_argument("--keep_metadata", action="store_true",
                        help="Photo output: copy the input's EXIF (orientation set upright, "
                             "thumbnail removed), XMP, IPTC, comments and PNG text; by "
                             "default outputs carry only the ICC colour profile (no GPS, no "
                             "camera serials).")
    parser.add_argument("--jpeg_quality", type=int, default=outputs.DEFAULT_JPEG_QUALITY,
                        help="Quality (1..100) of JPEG outputs.")
    parser.add_argument("--batch_size", type=int, default=perturb_report.DEFAULT_BATCH_SIZE,
                        help="Photos per model call.")
    return parser


def signature_of(args):
    """--prototype's signature, or the hide_* one of --hide (ValueError when both are given
    or --hide names an unknown attribute)."""
    if args.hide is None:
        return args.prototype or "opposite"
    if args.prototype is not None:
        raise ValueError("--hide and --prototype choose the same thing: give one")
    from semiadv.export import choice_names

    return choice_names.signature_name(choice_names.parse_hide(args.hide))


def main(argv=None):
    """Runs the command line; returns the exit code."""
    args, beam_args = build_parser().parse_known_args(argv)
    try:
        config = beam_config.make_config(args.export, args.input_pattern, args.output_dir,
                                         prototype=signature_of(args), align=args.align,
                                         batch_size=args.batch_size, output=args.output,
                                         max_faces=args.max_faces,
                                         keep_metadata=args.keep_metadata,
                                         jpeg_quality=args.jpeg_quality)
    except (FileNotFoundError, NotADirectoryError, ValueError) as error:
        print(f"semiadv-beam-perturb: {error}", file=sys.stderr)
        return 2
    report, _ = pipeline.run(config, PipelineOptions(beam_args))
    print(json.dumps(report["counts"]))
    for relative in report["failed"]:
        entry = report["files"][relative]
        print(f"{relative}: {entry['status']} {entry.get('error', '')}".rstrip(), file=sys.stderr)
    # Batch jobs go on past bad files; only a run that produced nothing fails.
    if not any(report["counts"].get(status) for status in perturb_report.DONE_STATUSES):
        print(f"no photo could be perturbed from {config.input_pattern}", file=sys.stderr)
        return 1
    return 0


def run():
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())


if __name__ == "__main__":
    run()
