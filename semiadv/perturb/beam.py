"""semiadv-beam-perturb: `semiadv-perturb` as an Apache Beam pipeline, for collections at scale.

  python -m semiadv.perturb.beam --export=exports/san --input_pattern='photos/**' \
      --output_dir=private --prototype=opposite [--noalign] [--batch_size=32] \
      [Beam options: --runner, --direct_num_workers, --direct_running_mode, --project, ...]

Photos matched by a file pattern (local paths, gs://, s3://, hdfs://: any filesystem Beam
reads, through `apache_beam.io.fileio`) are decoded, aligned and resized by the same
per-photo function as `semiadv-perturb` (`perturb.prepare_photo`), perturbed in batches by
`RunInference` over one signature of the export, and written under the same relative name
(relative to the pattern's folder, the part before its first wildcard) through Beam's
`FileSystems`, plus `perturb_report.json` in semiadv-perturb's format.

Every output is written under a hidden temporary name and renamed, so a killed worker leaves
no half-written image, and a rerun skips the outputs that exist (status "already_written",
or the earlier report's entry when that run finished). A bad photo gets its report entry
and never fails its bundle or batch. Exits 1 only when nothing could be perturbed, 2 for
user errors.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import logging
import os
import sys
import time
import uuid

# TensorFlow's C++ start-up chatter buries the binary's own output (workers inherit it).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_IMPORT_START = time.perf_counter()  # Each worker's share of the start-up: these imports.

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
from apache_beam.io import fileio  # noqa: E402
from apache_beam.io.filesystem import CompressionTypes  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402
from apache_beam.metrics import Metrics  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.ml.inference.base import (KeyedModelHandler, ModelHandler,  # noqa: E402
                                           PredictionResult, RunInference)
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions  # noqa: E402

# Not semiadv.perturb.folder, nor TensorFlow: see _perturb().
from semiadv.utils import imageio  # noqa: E402
from semiadv.perturb import spec as perturb_spec
from semiadv.export import savedmodel_pb

_IMPORT_S = time.perf_counter() - _IMPORT_START

METRICS_NAMESPACE = "semiadv"
_SKIPPED = "skipped"
_GLOB_CHARACTERS = "*?["


@dataclasses.dataclass(frozen=True)
class BeamPerturbConfig:
    """What the pipeline does; built by `make_config`, which checks it.

    Attributes:
        export: The SavedModel version dir (resolved: a model dir's newest version).
        prototype: Signature: "opposite", "same" or "neutral".
        image_shape: The export's (H, W, C).
        input_pattern: Beam file pattern of the photos (absolute for local paths).
        input_dir: The pattern's folder; outputs are named relative to it.
        output_dir: Where outputs and the report go.
        align: Detect and align faces; False only resizes (already aligned crops).
        batch_size: Photos per call of the signature.
        fast_worker_exit: SDK worker processes end without interpreter teardown
            (`exit_fast_in_sdk_worker`). `run` turns it on for the DirectRunner only: there
            the harness's end is the run's end and its exit code is only logged, while other
            runners' workers (Dataflow's) are judged by their exit code and restarted.
    """

    export: str
    prototype: str
    image_shape: tuple
    input_pattern: str
    input_dir: str
    output_dir: str
    align: bool = True
    batch_size: int = perturb_spec.DEFAULT_BATCH_SIZE
    fast_worker_exit: bool = False


# ---------------------------------------------------------------------------------------------
# Names: local paths or URLs, always with "/" separators.
# ---------------------------------------------------------------------------------------------


def _is_url(path):
    return "://" in path


def _normalized(path):
    """Absolute local path, or URL without a trailing "/"."""
    if _is_url(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{rest.rstrip('/')}" if rest.strip("/") else path
    return os.path.abspath(path)


def _is_within(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def normalize_pattern(pattern):
    """The pattern to match and its folder (the part before the first wildcard).

    A local folder or a URL ending in "/" means every file under it ("folder/**").

    Returns:
        (pattern, input_dir), both absolute for local paths.
    """
    if not any(char in pattern for char in _GLOB_CHARACTERS):
        if pattern.endswith("/") or (not _is_url(pattern) and os.path.isdir(pattern)):
            pattern = pattern.rstrip("/") + "/**"
    if not _is_url(pattern):
        pattern = os.path.abspath(pattern) + ("/" if pattern.endswith("/") else "")
    first_glob = min((pattern.index(char) for char in _GLOB_CHARACTERS if char in pattern),
                     default=len(pattern))
    return pattern, _normalized(pattern[:first_glob].rsplit("/", 1)[0] or "/")


def relative_name(path, input_dir):
    """`path` relative to `input_dir`, with "/" separators."""
    return path[len(input_dir.rstrip("/")) + 1:]


def output_path(config, relative):
    return FileSystems.join(config.output_dir, *relative.split("/"))


def _is_input_photo(metadata, config):
    """The files semiadv-perturb would take from the folder (`imageio.list_images`): image
    extensions, no hidden file or folder (our own temporary writes among them), nothing
    under output_dir."""
    path = metadata.path
    if not _is_within(path, config.input_dir) or _is_within(path, config.output_dir):
        return False
    relative = relative_name(path, config.input_dir)
    return (os.path.splitext(relative)[1].lower() in imageio.IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in relative.split("/")))


def write_atomically(path, data):
    """Writes bytes under a hidden temporary name beside `path`, then renames it.

    A worker killed mid-write leaves only the hidden temporary (which inputs and reruns
    ignore), never a half-written `path`. Any Beam filesystem.
    """
    folder, name = FileSystems.split(path)
    temporary = FileSystems.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) \
                as handle:
            handle.write(data)
        FileSystems.rename([temporary], [path])
    except BaseException:
        try:
            if FileSystems.exists(temporary):
                FileSystems.delete([temporary])
        except Exception:  # noqa: BLE001  The write's own error is the one to report.
            pass
        raise


# The module the DirectRunner's multi_processing workers (and Dataflow's) run as __main__.
_SDK_WORKER_MAIN = os.path.join("apache_beam", "runners", "worker", "sdk_worker_main.py")
_exit_registered = False
# Start-up costs of this process, reported once as metrics from inside a bundle (metrics
# updated in setup() belong to no bundle and are dropped).
_startup = {"import_s": _IMPORT_S, "load_model_s": None}


def _perturb():
    """semiadv.perturb.folder, imported by a worker for its first photo or batch, never by the
    driver. It brings TensorFlow: 3-4 s to import and 1-2 s to tear down at exit, which the
    driver, only building and launching the pipeline, would add to every run (BENCHMARKS.md
    §8c). The import counts in the worker's start-up metric."""
    if "semiadv.perturb.folder" not in sys.modules:
        start = time.perf_counter()
        from semiadv.perturb import folder as perturb  # noqa: F401
        if _startup["import_s"] is not None:
            _startup["import_s"] += time.perf_counter() - start
    return sys.modules["semiadv.perturb.folder"]


def _report_startup(name):
    """Emits this process's start-up cost `name` (seconds) once, as a distribution in us."""
    seconds = _startup.get(name)
    if seconds is not None:
        Metrics.distribution(METRICS_NAMESPACE, f"startup_{name[:-2]}_us").update(
            int(1e6 * seconds))
        _startup[name] = None


def _exit_without_finalizing():
    """atexit hook of SDK worker processes: exits now, with the interpreter's exit code.

    The harness has returned when this runs: every bundle is finished (outputs renamed in
    place) and its log handler closed. What is skipped is only the interpreter's teardown
    of TensorFlow's modules, 1-1.7 s per worker on a loaded 2-core machine; and the
    DirectRunner stops its workers one after the other, waiting for each process to end, so
    two workers' teardowns were the last ~3 s of every run (issue 12).
    """
    # An uncaught exception ending the harness's main sets these (last_exc from Python 3.12).
    failed = any(getattr(sys, name, None) is not None for name in ("last_value", "last_exc"))
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001  A closed stream has nothing left to flush.
            pass
    os._exit(1 if failed else 0)


def exit_fast_in_sdk_worker():
    """In an SDK worker process (not the driver, not an in-process runner), ends the process
    without interpreter teardown once the harness is done. Idempotent; cheap to call."""
    global _exit_registered
    if not _exit_registered and sys.argv and sys.argv[0].endswith(_SDK_WORKER_MAIN):
        # Registered last, so it runs first: the handlers it skips are teardown only.
        atexit.register(_exit_without_finalizing)
        _exit_registered = True


# ---------------------------------------------------------------------------------------------
# The pipeline's steps.
# ---------------------------------------------------------------------------------------------


class PreparePhoto(beam.DoFn):
    """ReadableFile -> ((relative, entry), face) for the model, or (relative, entry) on the
    "skipped" output for photos already written, unreadable or without a face."""

    def __init__(self, config):
        self.config = config
        self.read_us = Metrics.distribution(METRICS_NAMESPACE, "read_us")
        self.prepare_us = Metrics.distribution(METRICS_NAMESPACE, "decode_align_us")

    def setup(self):
        if self.config.fast_worker_exit:
            exit_fast_in_sdk_worker()
        _perturb()

    def process(self, readable_file):
        _report_startup("import_s")
        path = readable_file.metadata.path
        relative = relative_name(path, self.config.input_dir)
        if FileSystems.exists(output_path(self.config, relative)):
            yield beam.pvalue.TaggedOutput(_SKIPPED, (relative, {"status": "already_written"}))
            return
        start = time.perf_counter()
        try:
            data = readable_file.read()
        except Exception as error:  # noqa: BLE001  Any filesystem's error; the run goes on.
            entry = {"status": "unreadable", "error": f"cannot read image {path!r}: {error}"}
            yield beam.pvalue.TaggedOutput(_SKIPPED, (relative, entry))
            return
        read = time.perf_counter()
        face, entry = _perturb().prepare_photo(path, self.config.image_shape,
                                               self.config.align, data=data)
        self.read_us.update(int(1e6 * (read - start)))
        self.prepare_us.update(int(1e6 * (time.perf_counter() - read)))
        if face is None:
            logging.warning("skipped %s: %s", path, entry.get("error", entry["status"]))
            yield beam.pvalue.TaggedOutput(_SKIPPED, (relative, entry))
        else:
            yield (relative, entry), face


class _LoadedSignature:
    """The loaded SavedModel and one of its signatures, as one object: RunInference keeps
    a weak reference to the model (a tuple cannot have one), and the signature reads the
    SavedModel's variables, so both must live together."""

    def __init__(self, loaded, signature):
        self.loaded = loaded
        self.signature = signature


class SignatureModelHandler(ModelHandler):
    """RunInference over one signature of an export: faces [H, W, C] in, dicts out.

    The stock TF handler calls a model, not a named signature with a keyword input, hence
    this handler. The SavedModel is loaded once per worker process (RunInference shares
    it between the worker's threads) and batches are exactly `batch_size` photos except
    at the end of a bundle.
    """

    def __init__(self, export, prototype, batch_size):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self.export = export
        self.prototype = prototype

    def load_model(self):
        perturb = _perturb()  # Its import is counted apart, as the worker's import.
        start = time.perf_counter()
        model = _LoadedSignature(*perturb.load_signature(self.export, self.prototype)[:2])
        _startup["load_model_s"] = time.perf_counter() - start
        logging.info("loaded %s (%s) in %.2f s", self.export, self.prototype,
                     _startup["load_model_s"])
        return model

    def run_inference(self, batch, model, inference_args=None):
        _report_startup("load_model_s")
        import tensorflow as tf  # Loaded with the model: see _perturb().

        signature = model.signature
        start = time.perf_counter()
        try:
            outputs = signature(image=tf.constant(np.stack(batch)))
            perturbed, scores = outputs["perturbed"].numpy(), outputs["male_score"].numpy()
        except Exception as error:  # noqa: BLE001  One bad face must not fail its batch.
            if len(batch) == 1:
                return [PredictionResult(None, {"error": f"{type(error).__name__}: {error}"})]
            return [result for face in batch for result in self.run_inference([face], model)]
        Metrics.distribution(METRICS_NAMESPACE, "model_us_per_batch").update(
            int(1e6 * (time.perf_counter() - start)))
        # The face itself is not carried on (example=None): it would only cost memory.
        return [PredictionResult(None, {"perturbed": image, "male_score": float(score)})
                for image, score in zip(perturbed, scores)]

    def get_num_bytes(self, batch):
        return sum(face.nbytes for face in batch)  # The default pickles the whole batch.

    def get_metrics_namespace(self):
        return "RunInference_semiadv"


class WriteOutput(beam.DoFn):
    """((relative, entry), PredictionResult) -> (relative, final entry), image written."""

    def __init__(self, config):
        self.config = config
        self.write_us = Metrics.distribution(METRICS_NAMESPACE, "encode_write_us")

    def setup(self):
        if self.config.fast_worker_exit:
            exit_fast_in_sdk_worker()

    def process(self, element):
        (relative, entry), result = element
        entry = dict(entry)
        if "error" in result.inference:
            entry.update(status="error", error=result.inference["error"])
            yield relative, entry
            return
        start = time.perf_counter()
        path = output_path(self.config, relative)
        try:
            write_atomically(path, imageio.encode_image(path, result.inference["perturbed"]))
        except Exception as error:  # noqa: BLE001  Any filesystem's error; the run goes on.
            entry.update(status="write_failed", error=str(error))
        else:
            entry.update(status="perturbed", male_score=result.inference["male_score"])
        self.write_us.update(int(1e6 * (time.perf_counter() - start)))
        yield relative, entry


def _read_json(path):
    if not FileSystems.exists(path):
        return None
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None  # A damaged old report only loses the reuse of its scores.


def write_report(entries, config):
    """Writes perturb_report.json (semiadv-perturb's format) from all (relative, entry)."""
    path = output_path(config, perturb_spec.REPORT_NAME)
    files = dict(entries)
    # semiadv-perturb's count of photos skipped because their output existed.
    skipped_existing = sum(entry["status"] == "already_written" for entry in files.values())
    # A rerun after a finished run keeps that run's entries (male_score) for what it skips.
    previous = (_read_json(path) or {}).get("files", {})
    for relative, entry in files.items():
        if entry["status"] == "already_written" and \
                previous.get(relative, {}).get("status") == "perturbed":
            files[relative] = previous[relative]
    report = {"export": config.export, "prototype": config.prototype,
              "image_shape": list(config.image_shape), "input_dir": config.input_dir,
              "input_pattern": config.input_pattern, "align": config.align,
              "skipped_existing": skipped_existing, "files": files}
    perturb_spec.finish_report(report)
    write_atomically(path, json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))
    return report["counts"]


def build_pipeline(pipeline, config):
    """Adds the perturbation to `pipeline`; returns the PCollection of the report's counts."""
    photos = (pipeline
              | "Match" >> fileio.MatchFiles(config.input_pattern)
              | "Photos" >> beam.Filter(_is_input_photo, config)
              # Matching yields every file in one bundle: spread them over the workers.
              | "Spread" >> beam.Reshuffle()
              | "Read" >> fileio.ReadMatches())
    prepared = photos | "Prepare" >> beam.ParDo(PreparePhoto(config)).with_outputs(
        _SKIPPED, main="faces")
    handler = KeyedModelHandler(SignatureModelHandler(config.export, config.prototype,
                                                      config.batch_size))
    written = (prepared.faces
               | "Perturb" >> RunInference(handler)
               | "Write" >> beam.ParDo(WriteOutput(config)))
    return ((prepared[_SKIPPED], written)
            | "Entries" >> beam.Flatten()
            | "Collect" >> beam.combiners.ToList()
            | "Report" >> beam.Map(write_report, config))


# ---------------------------------------------------------------------------------------------
# Entry points.
# ---------------------------------------------------------------------------------------------


def resolve_export(export):
    """`perturb.resolve_export` without TensorFlow: the SavedModel dir of `export` (a
    version dir, or a model dir's highest integer version), local or on any filesystem
    Beam reads.

    Raises:
        FileNotFoundError: naming the path when it holds no SavedModel.
    """
    if not _is_url(str(export)):
        return str(perturb_spec.resolve_local_export(export))
    url = str(export).rstrip("/")
    if FileSystems.exists(f"{url}/saved_model.pb"):
        return url
    try:
        matched = FileSystems.match([f"{url}/*/saved_model.pb"])[0].metadata_list
    except Exception:  # noqa: BLE001  Beam wraps each filesystem's own error.
        matched = []
    versions = sorted((int(name) for name in (metadata.path.rstrip("/").split("/")[-2]
                                              for metadata in matched) if name.isdigit()),
                      reverse=True)
    if not versions:
        raise perturb_spec.no_saved_model_error(url)
    return f"{url}/{versions[0]}"


def read_image_shape(export, prototype):
    """The (H, W, C) of a signature's `image` input, read from saved_model.pb alone.

    `perturb.load_signature` restores every function of the export (1.5-2 s of CPU for the
    SAN's 11 signatures) and needs TensorFlow; the driver needs only this shape (the
    workers load their own copy), read here without TensorFlow (`savedmodel_pb`). The
    checks and messages are `load_signature`'s.

    Raises:
        FileNotFoundError: when `export` holds no SavedModel.
        ValueError: for an unknown prototype, an export without that signature or with
            an image input that is not [None, H, W, C], or an unreadable saved_model.pb.
    """
    if prototype not in perturb_spec.PROTOTYPES:
        raise ValueError(f"prototype must be one of {perturb_spec.PROTOTYPES}, "
                         f"got {prototype!r}")
    path = f"{resolve_export(export).rstrip('/')}/saved_model.pb"
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            signatures = savedmodel_pb.signature_input_shapes(handle.read())
    except savedmodel_pb.ParseError as error:
        raise ValueError(f"export {export}: cannot parse {path}: {error}") from None
    if prototype not in signatures:
        names = sorted(name for name in signatures if not name.startswith("__"))
        raise ValueError(f"export {export} has no signature {prototype!r} (it has {names})")
    shape = signatures[prototype].get("image")
    if shape is None or len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"export {export}: signature {prototype!r} has image shape {shape}, "
                         "expected [None, H, W, C]")
    return tuple(int(size) for size in shape[1:])


def make_config(export, input_pattern, output_dir, prototype="opposite", align=True,
                batch_size=perturb_spec.DEFAULT_BATCH_SIZE):
    """Checks the arguments and reads the export's image shape.

    Only the export's saved_model.pb is read here (`read_image_shape`); each worker loads
    the export itself, so an export with unreadable variables fails in the workers.

    Raises:
        FileNotFoundError: for a missing export or a pattern that matches nothing.
        ValueError: for an unknown prototype, a bad batch size, or an output folder that
            is the input folder or contains it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    image_shape = read_image_shape(export, prototype)
    pattern, input_dir = normalize_pattern(input_pattern)
    output_dir = _normalized(output_dir)
    if output_dir == input_dir:
        raise ValueError(f"output_dir must differ from the input folder ({input_dir!r}): "
                         "inputs are never overwritten")
    if _is_within(input_dir, output_dir):
        raise ValueError(f"input folder {input_dir!r} is inside output_dir {output_dir!r}: "
                         "outputs could overwrite inputs")
    try:
        matched = FileSystems.match([pattern], limits=[1])[0].metadata_list
    except Exception as error:  # noqa: BLE001  Beam wraps each filesystem's own error.
        raise FileNotFoundError(f"cannot match --input_pattern={pattern!r}: {error}") from None
    if not matched:
        raise FileNotFoundError(f"no file matches --input_pattern={pattern!r}")
    return BeamPerturbConfig(export=resolve_export(export), prototype=prototype,
                             image_shape=tuple(image_shape), input_pattern=pattern,
                             input_dir=input_dir, output_dir=output_dir, align=bool(align),
                             batch_size=int(batch_size))


def run(config, options=None):
    """Runs the pipeline to the end.

    Args:
        config: From `make_config`.
        options: Beam PipelineOptions (runner and its settings); None: DirectRunner.

    Returns:
        (report, timings): the report as written to output_dir, and per stage
        {"count", "sum_s", "mean_ms"} of the "semiadv" metrics (read_us, decode_align_us,
        model_us_per_batch, encode_write_us; summed over workers; and per worker
        process, once: startup_import_us for importing TensorFlow and semiadv,
        startup_load_model_us for loading the export) where the runner reports them.
    """
    options = options or PipelineOptions([])
    if is_direct_runner(options):
        config = dataclasses.replace(config, fast_worker_exit=True)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    report = _read_json(output_path(config, perturb_spec.REPORT_NAME))
    if report is None:
        raise RuntimeError(f"the pipeline finished without writing "
                           f"{output_path(config, perturb_spec.REPORT_NAME)}")
    return report, _timings(result)


def is_direct_runner(options) -> bool:
    """Whether `options` run the pipeline on the DirectRunner (Beam's default)."""
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower() in _DIRECT_RUNNERS


# The DirectRunner's names as --runner takes them (lower-cased; a dotted path's last part).
_DIRECT_RUNNERS = ("direct", "directrunner", "bundlebaseddirectrunner",
                   "switchingdirectrunner", "testdirectrunner")


def _timings(result):
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except Exception:  # noqa: BLE001  Some runners report no metrics; timings are extras.
        return {}
    timings = {}
    for metric in query["distributions"]:
        value = metric.committed or metric.attempted
        if value is not None and value.count:
            timings[metric.key.metric.name] = {"count": value.count, "sum_s": value.sum / 1e6,
                                               "mean_ms": value.sum / value.count / 1e3}
    return timings


def build_parser():
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
    parser.add_argument("--prototype", default="opposite", choices=perturb_spec.PROTOTYPES,
                        help="Which prototype the faces are re-rendered with.")
    parser.add_argument("--noalign", dest="align", action="store_false",
                        help="Only resize the photos (already aligned crops); default: "
                             "detect and align faces.")
    parser.add_argument("--batch_size", type=int, default=perturb_spec.DEFAULT_BATCH_SIZE,
                        help="Photos per model call.")
    return parser


def main(argv=None):
    """Runs the command line; returns the exit code."""
    args, beam_args = build_parser().parse_known_args(argv)
    try:
        config = make_config(args.export, args.input_pattern, args.output_dir,
                             prototype=args.prototype, align=args.align,
                             batch_size=args.batch_size)
    except (FileNotFoundError, NotADirectoryError, ValueError) as error:
        print(f"semiadv-beam-perturb: {error}", file=sys.stderr)
        return 2
    report, _ = run(config, PipelineOptions(beam_args))
    print(json.dumps(report["counts"]))
    for relative in report["failed"]:
        entry = report["files"][relative]
        print(f"{relative}: {entry['status']} {entry.get('error', '')}".rstrip(), file=sys.stderr)
    # Batch jobs go on past bad files; only a run that produced nothing fails.
    if not any(report["counts"].get(status) for status in perturb_spec.DONE_STATUSES):
        print(f"no photo could be perturbed from {config.input_pattern}", file=sys.stderr)
        return 1
    return 0


def run_cli():
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())


if __name__ == "__main__":
    run_cli()
