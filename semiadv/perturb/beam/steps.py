"""The Beam pipeline's steps around the model: pick the photos, prepare them, write the
outputs and the report."""

from __future__ import annotations

import json
import logging
import os
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from semiadv.perturb import photo as photo_lib
from semiadv.perturb import photoprep
from semiadv.perturb import report as perturb_report
from semiadv.perturb.beam import filesystems
from semiadv.perturb.beam import paths
from semiadv.perturb.beam import worker
from semiadv.perturb.beam.config import output_path
from semiadv.utils import imageio

SKIPPED = "skipped"  # The tag of PreparePhoto's output for photos that reach no model.


def is_input_photo(metadata, config):
    """The files semiadv-perturb would take from the folder (`imageio.list_images`): image
    extensions (and those of the photos it lists as unsupported), no hidden file or folder
    (our own temporary writes among them), nothing under output_dir."""
    path = metadata.path
    if not paths.is_within(path, config.input_dir) or paths.is_within(path, config.output_dir):
        return False
    relative = paths.relative_name(path, config.input_dir)
    extension = os.path.splitext(relative)[1].lower()
    return (extension in imageio.IMAGE_EXTENSIONS + imageio.UNREAD_PHOTO_EXTENSIONS
            and not any(part.startswith(".") for part in relative.split("/")))


class PreparePhoto(beam.DoFn):
    """ReadableFile -> ((relative, entry), face) for the model (the photo output: a
    `photoprep.PhotoFaces` with every face), or (relative, entry) on the SKIPPED output for
    photos already written, unreadable or without a face."""

    def __init__(self, config):
        self.config = config
        self.read_us = Metrics.distribution(worker.METRICS_NAMESPACE, "read_us")
        self.prepare_us = Metrics.distribution(worker.METRICS_NAMESPACE, "decode_align_us")

    def setup(self):
        if self.config.fast_worker_exit:
            worker.exit_fast_in_sdk_worker()
        worker.import_faces()

    def process(self, readable_file):
        worker.report_startup("import_s")
        path = readable_file.metadata.path
        relative = paths.relative_name(path, self.config.input_dir)
        if os.path.splitext(relative)[1].lower() in imageio.UNREAD_PHOTO_EXTENSIONS:
            yield beam.pvalue.TaggedOutput(SKIPPED, (relative, photoprep.unread_photo_entry(path)))
            return
        if FileSystems.exists(output_path(self.config, relative)):
            yield beam.pvalue.TaggedOutput(SKIPPED, (relative, {"status": "already_written"}))
            return
        start = time.perf_counter()
        try:
            data = readable_file.read()
        except Exception as error:  # noqa: BLE001  Any filesystem's error; the run goes on.
            entry = {"status": "unreadable", "error": f"cannot read image {path!r}: {error}"}
            yield beam.pvalue.TaggedOutput(SKIPPED, (relative, entry))
            return
        read = time.perf_counter()
        faces = worker.import_faces()
        if self.config.output == "photo":
            face, entry = faces.prepare_photo_faces(path, self.config.image_shape,
                                                    self.config.max_faces,
                                                    self.config.keep_metadata, data=data)
        else:
            face, entry = faces.prepare_photo(path, self.config.image_shape,
                                              self.config.align, data=data)
        self.read_us.update(int(1e6 * (read - start)))
        self.prepare_us.update(int(1e6 * (time.perf_counter() - read)))
        if face is None:
            logging.warning("skipped %s: %s", path, entry.get("error", entry["status"]))
            yield beam.pvalue.TaggedOutput(SKIPPED, (relative, entry))
        else:
            yield (relative, entry), face


class WriteOutput(beam.DoFn):
    """((relative, entry), PredictionResult) -> (relative, final entry), image written."""

    def __init__(self, config):
        self.config = config
        self.write_us = Metrics.distribution(worker.METRICS_NAMESPACE, "encode_write_us")

    def setup(self):
        if self.config.fast_worker_exit:
            worker.exit_fast_in_sdk_worker()

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
            filesystems.write_atomically(path, self._encoded(path, result))
        except Exception as error:  # noqa: BLE001  Any filesystem's error; the run goes on.
            message = str(error)
            entry.update(status="write_failed",
                         error=message if path in message else f"{path}: {message}")
        else:
            if self.config.output == "photo":
                scores = result.inference["male_scores"]
                entry.update(status="perturbed", faces=len(scores), male_score=scores[0],
                             male_scores=scores)
            else:
                entry.update(status="perturbed", male_score=result.inference["male_score"])
        self.write_us.update(int(1e6 * (time.perf_counter() - start)))
        yield relative, entry


    def _encoded(self, path, result):
        if self.config.output != "photo":
            return imageio.encode_image(path, result.inference["perturbed"],
                                        self.config.jpeg_quality)
        photo_faces = result.example
        changes = [out - face for out, face in zip(result.inference["perturbed"],
                                                   photo_faces.faces)]
        return photo_lib.encode_edited(path, photo_faces.pixels, changes,
                                       photo_faces.transforms, photo_faces.metadata,
                                       self.config.jpeg_quality)


def write_report(entries, config):
    """Writes perturb_report.json (semiadv-perturb's format) from all (relative, entry);
    returns its counts."""
    path = output_path(config, perturb_report.REPORT_NAME)
    files = dict(entries)
    # semiadv-perturb's count of photos skipped because their output existed.
    skipped_existing = sum(entry["status"] == "already_written" for entry in files.values())
    # A rerun after a finished run keeps that run's entries (male_score) for what it skips;
    # a damaged earlier report only loses that.
    previous = (filesystems.read_json(path) or {}).get("files", {})
    for relative, entry in files.items():
        if entry["status"] == "already_written" and \
                previous.get(relative, {}).get("status") == "perturbed":
            files[relative] = previous[relative]
    report = perturb_report.new_report(config.export, config.prototype, config.image_shape,
                                       config.input_dir, config.align, skipped_existing, files,
                                       input_pattern=config.input_pattern,
                                       output=config.output)
    perturb_report.finish_report(report)
    filesystems.write_atomically(
        path, json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))
    return report["counts"]
