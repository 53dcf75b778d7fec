"""The Beam pipeline (semiadv-beam-perturb) against threaded semiadv-perturb, photos/s.

  python benchmarks/beam_perturb.py [--utkface_photos=1000] [--celeba_photos=1000]
      [--workers=2] [--batch_size=32] [--repeats=1] [--commands]

Exports a SAN with random weights at 64x64 RGB (the UTKFace recipe's widths, as
`inference.py`; weights do not change the cost), then, in one run and interleaved per
dataset, perturbs the same photos with:

  threaded    `perturb.perturb_folder` (what semiadv-perturb runs: a thread per core reads and
              aligns, the model runs on batches of --batch_size)
  beam mp     `pipeline.run` on the DirectRunner's batch engine (FnApiRunner) with
              --direct_num_workers=WORKERS --direct_running_mode=multi_processing
  beam start  the same Beam run on 2 photos: the fixed cost (worker processes importing
              TensorFlow, loading the export), subtracted for the "after start-up" rate;
              its parts: the driver's make_config, and per worker process (the two run
              in parallel) importing TensorFlow + semiadv and loading the export

UTKFace photos are aligned crops (run with --noalign, as BENCHMARKS.md §6); the CelebA
photos are in the wild (aligned by `semiadv.align.face`, whichever detector is the default).
Both runs are timed from the call to the report on disk, in this process (its TensorFlow
is already imported: the Beam workers' start-up is theirs alone). Where the time goes
comes from the pipeline's Beam metrics (read, decode+align+resize per photo, model per
batch, encode+write per photo, each summed over both workers) plus a one-thread split of
decoding from aligning on a sample.

With --commands, both candidates are also run the way a user runs them: the console scripts
`semiadv-perturb` and `semiadv-beam-perturb` (same Beam options) as fresh processes, timed
wall clock from launch to exit, interleaved. There the threaded command pays its own start
(importing TensorFlow, loading the export) as the Beam workers do theirs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import machine, table, write_results

RECIPE = dict(encoder_filters=(8, 12), decoder_filters=(64, 32), classifier_width=0.5)
IMAGE_SIZE = 64


def _export(work, size=IMAGE_SIZE, channels=3):
    import keras
    import numpy as np

    from semiadv.export import writer
    from semiadv.models import autoencoders, gender_classifiers
    from semiadv.prototypes import average

    rng = np.random.default_rng(0)
    male, female = rng.uniform(0.3, 0.7, (2, size, size, channels)).astype(np.float32)
    protos = average.Prototypes(male, female, (male + female) / 2, 0.5, (1, 1))
    keras.utils.set_random_seed(0)
    autoencoder = autoencoders.build_autoencoder(size, channels, RECIPE["encoder_filters"],
                                                 RECIPE["decoder_filters"])
    gender = gender_classifiers.build_gender_classifier(size, channels,
                                                        width=RECIPE["classifier_width"])
    return writer.export_san(autoencoder, gender, protos, work / "exports", "bench")


def _link_folder(folder, sources, root):
    """A folder of symlinks to `sources` under their names relative to `root`."""
    for source in sources:
        link = folder / source.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    return folder


def _stage_split(sources, align, image_size, sample=40):
    """One thread, per photo ms: read+decode, then align (or nothing), then resize."""
    import numpy as np

    from semiadv.utils import imageio
    from semiadv.perturb import faces

    decode, prepare = [], []
    for source in sources[:sample]:
        start = time.perf_counter()
        imageio.read_image(source)
        decode.append(time.perf_counter() - start)
        start = time.perf_counter()
        faces.prepare_photo(source, (image_size, image_size, 3), align)
        prepare.append(time.perf_counter() - start)
    return {"decode_ms": 1e3 * float(np.median(decode)),
            "decode_align_resize_ms": 1e3 * float(np.median(prepare))}


def _command_run(command, output_dir):
    """Runs a console script to completion; (wall seconds, the counts of its report)."""
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    report = json.loads((output_dir / "perturb_report.json").read_text())
    return seconds, report["counts"]


def _commands(version, source_dir, work, align, batch_size, beam_options, repeats, key):
    """Both console scripts on one folder, interleaved; best wall seconds of each and counts."""
    bin_dir = Path(sys.executable).parent
    align_flag = [] if align else ["--noalign"]
    times, counts = {"threaded": [], "beam": []}, {}
    for round_ in range(repeats):
        for name in (("threaded", "beam") if round_ % 2 == 0 else ("beam", "threaded")):
            output = work / f"cmd_{key}_{name}"
            shutil.rmtree(output, ignore_errors=True)
            if name == "threaded":
                command = [str(bin_dir / "semiadv-perturb"), f"--export={version}",
                           f"--input_dir={source_dir}", f"--output_dir={output}",
                           f"--batch_size={batch_size}", *align_flag]
            else:
                command = [str(bin_dir / "semiadv-beam-perturb"), f"--export={version}",
                           f"--input_pattern={source_dir}", f"--output_dir={output}",
                           f"--batch_size={batch_size}", *align_flag, *beam_options]
            seconds, counts[name] = _command_run(command, output)
            times[name].append(seconds)
            print(f"  command {name} round {round_}: {seconds:.1f} s", flush=True)
    assert counts["threaded"] == counts["beam"], counts
    return {name: min(values) for name, values in times.items()}, counts["threaded"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utkface_photos", type=int, default=1000)
    parser.add_argument("--celeba_photos", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="Beam worker processes")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds")
    parser.add_argument("--commands", action="store_true",
                        help="also time both console scripts as fresh processes")
    parser.add_argument("--faces", default=str(_common.REPO.parent / "shared" / "faces"))
    parser.add_argument("--output", default="beam_perturb")
    args = parser.parse_args()

    from apache_beam.options.pipeline_options import PipelineOptions

    from semiadv.perturb.beam import config as beam_config
    from semiadv.perturb.beam import pipeline
    from semiadv.perturb import folder as perturb

    info = machine()
    faces = Path(args.faces)
    scratch = tempfile.TemporaryDirectory()
    work = Path(scratch.name)
    version = _export(work)
    datasets = {
        "UTKFace (aligned crops, --noalign)": (
            sorted((faces / "utkface").glob("*.jpg"))[:args.utkface_photos], faces / "utkface",
            False),
        "CelebA in the wild (aligned)": (
            sorted((faces / "celeba_identities").rglob("*.jpg"))[:args.celeba_photos],
            faces / "celeba_identities", True),
    }
    beam_options = ["--runner=FnApiRunner", f"--direct_num_workers={args.workers}",
                    "--direct_running_mode=multi_processing"]
    rows, stages = [], {}
    for name, (sources, root, align) in datasets.items():
        if not sources:
            print(f"{name}: no photos under {root}, skipped")
            continue
        source_dir = _link_folder(work / f"in_{len(rows)}", sources, root)
        tiny_dir = _link_folder(work / f"tiny_{len(rows)}", sources[:2], root)
        times = {"threaded": [], "beam": [], "beam_start": []}
        config_times = {"beam": [], "beam_start": []}
        timings, start_timings = {}, {}
        for round_ in range(args.repeats):
            outputs = {key: work / f"out_{key}" for key in times}
            for output in outputs.values():
                shutil.rmtree(output, ignore_errors=True)
            start = time.perf_counter()
            threaded = perturb.perturb_folder(version, source_dir, outputs["threaded"],
                                              align=align, batch_size=args.batch_size)
            times["threaded"].append(time.perf_counter() - start)
            for key, folder in (("beam", source_dir), ("beam_start", tiny_dir)):
                start = time.perf_counter()
                config = beam_config.make_config(str(version), str(folder),
                                                 str(outputs[key]), align=align,
                                                 batch_size=args.batch_size)
                config_times[key].append(time.perf_counter() - start)
                report, measured = pipeline.run(config, PipelineOptions(beam_options))
                times[key].append(time.perf_counter() - start)
                if key == "beam":
                    beam_report, timings = report, measured
                else:
                    start_timings = measured
            print(f"{name} round {round_}: " + ", ".join(
                f"{key} {values[-1]:.1f} s" for key, values in times.items()), flush=True)
        done = threaded["counts"].get("perturbed", 0)
        assert beam_report["counts"] == threaded["counts"], (beam_report["counts"],
                                                             threaded["counts"])
        best = {key: min(values) for key, values in times.items()}
        for candidate, seconds in (("threaded semiadv-perturb", best["threaded"]),
                                   (f"Beam, {args.workers} worker processes", best["beam"])):
            rows.append({"photos": name, "candidate": candidate, "files": len(sources),
                         "perturbed": done, "s": seconds, "photos_per_s": len(sources) / seconds,
                         "vs_threaded": best["threaded"] / seconds})
        rows[-1]["start_s"] = best["beam_start"]
        # The start-up's parts: the driver's make_config, then per worker process (each
        # in parallel with the other) its imports and its load of the export.
        rows[-1]["start_config_s"] = min(config_times["beam_start"])
        for part in ("import", "load_model"):
            metric = start_timings.get(f"startup_{part}_us")
            if metric:
                rows[-1][f"start_{part}_s"] = metric["sum_s"] / metric["count"]
        rows[-1]["after_start_photos_per_s"] = len(sources) / max(
            best["beam"] - best["beam_start"], 1e-9)
        if args.commands:
            best_cmd, counts = _commands(version, source_dir, work, align, args.batch_size,
                                         beam_options, max(2, args.repeats), len(rows))
            for candidate, seconds in (("command: semiadv-perturb", best_cmd["threaded"]),
                                       (f"command: semiadv-beam-perturb, {args.workers} workers",
                                        best_cmd["beam"])):
                rows.append({"photos": name, "candidate": candidate, "files": len(sources),
                             "perturbed": counts.get("perturbed", 0), "s": seconds,
                             "photos_per_s": len(sources) / seconds,
                             "vs_threaded": best_cmd["threaded"] / seconds})
        stages[name] = {"beam_metrics": timings, "beam_start_metrics": start_timings,
                        "one_thread": _stage_split(sources, align, IMAGE_SIZE)}
        print(f"{name}: {stages[name]}", flush=True)
    columns = ["photos", "candidate", "files", "perturbed", "s", "photos_per_s", "vs_threaded",
               "start_s", "start_config_s", "start_import_s", "start_load_model_s",
               "after_start_photos_per_s"]
    print(table(rows, columns))
    path = write_results(args.output, {"machine": info, "args": vars(args), "rows": rows,
                                       "stages": stages})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
