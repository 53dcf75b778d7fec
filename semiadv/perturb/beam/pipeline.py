"""The Beam pipeline of semiadv-beam-perturb: built, run, and its timings read back."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from semiadv.perturb import report as perturb_report
from semiadv.perturb.beam import filesystems
from semiadv.perturb.beam import steps
from semiadv.perturb.beam import worker
from semiadv.perturb.beam.config import output_path
from semiadv.perturb.beam.handler import SignatureModelHandler

# The DirectRunner's names as --runner takes them (lower-cased; a dotted path's last part).
_DIRECT_RUNNERS = ("direct", "directrunner", "bundlebaseddirectrunner",
                   "switchingdirectrunner", "testdirectrunner")


def build_pipeline(pipeline, config):
    """Adds the perturbation to `pipeline`; returns the PCollection of the report's counts."""
    photos = (pipeline
              | "Match" >> fileio.MatchFiles(config.input_pattern)
              | "Photos" >> beam.Filter(steps.is_input_photo, config)
              # Matching yields every file in one bundle: spread them over the workers.
              | "Spread" >> beam.Reshuffle()
              | "Read" >> fileio.ReadMatches())
    prepared = photos | "Prepare" >> beam.ParDo(steps.PreparePhoto(config)).with_outputs(
        steps.SKIPPED, main="faces")
    handler = KeyedModelHandler(SignatureModelHandler(config.export, config.prototype,
                                                      config.batch_size,
                                                      photo_output=config.output == "photo"))
    written = (prepared.faces
               | "Perturb" >> RunInference(handler)
               | "Write" >> beam.ParDo(steps.WriteOutput(config)))
    return ((prepared[steps.SKIPPED], written)
            | "Entries" >> beam.Flatten()
            | "Collect" >> beam.combiners.ToList()
            | "Report" >> beam.Map(steps.write_report, config))


def is_direct_runner(options) -> bool:
    """Whether `options` run the pipeline on the DirectRunner (Beam's default)."""
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower() in _DIRECT_RUNNERS


def run(config, options=None):
    """Runs the pipeline to the end.

    Args:
        config: From `semiadv.perturb.beam.config.make_config`.
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
    report_path = output_path(config, perturb_report.REPORT_NAME)
    report = filesystems.read_json(report_path)
    if report is None:
        raise RuntimeError(f"the pipeline finished without writing {report_path}")
    return report, _timings(result)


def _timings(result):
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(worker.METRICS_NAMESPACE))
    except Exception:  # noqa: BLE001  Some runners report no metrics; timings are extras.
        return {}
    timings = {}
    for metric in query["distributions"]:
        value = metric.committed or metric.attempted
        if value is not None and value.count:
            timings[metric.key.metric.name] = {"count": value.count, "sum_s": value.sum / 1e6,
                                               "mean_ms": value.sum / value.count / 1e3}
    return timings
