"""semiadv-perturb's job: applies an exported SAN to a folder of photos.

Each photo is read, aligned (or only resized) by `semiadv.perturb.faces`, perturbed in batches
through one signature of the export (`semiadv.export.locate.load_signature`), and written under
the same relative name in the output folder, next to `perturb_report.json`. Bad photos are
reported and skipped; inputs are never written to.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from semiadv.errors import UserValueError
from semiadv.export import locate
from semiadv.perturb import faces
from semiadv.perturb import photoprep
from semiadv.perturb import report as perturb_report
from semiadv.utils import files
from semiadv.utils import imageio
from semiadv.utils import parallel

ALIGNED_DIR = "aligned"
# Where photos are read and aligned: "thread"s of this process, or worker "process"es that
# never import TensorFlow (semiadv.utils.parallel.process_map). Threads are the default:
# processes are no faster on a quiet machine (BENCHMARKS.md §9d).
POOLS = ("thread", "process")
DEFAULT_POOL = "thread"
_PROGRESS_SECONDS = 10.0


# ---------------------------------------------------------------------------------------------
# Folders.
# ---------------------------------------------------------------------------------------------


def _is_within(path, folder):
    return path == folder or folder in path.parents


def _check_folders(input_dir, output_dir):
    """Refuses folder pairs where an output could land on an input."""
    if not input_dir.is_dir():
        raise NotADirectoryError(
            f"input folder {str(input_dir)!r} does not exist or is not a folder")
    if input_dir == output_dir:
        raise ValueError(f"output_dir must differ from input_dir ({str(input_dir)!r}): "
                         "inputs are never overwritten")
    if _is_within(input_dir, output_dir):
        # output/<rel> could then be one of the inputs (e.g. input=out/a, rel=a/x.jpg).
        raise ValueError(f"input_dir {str(input_dir)!r} is inside output_dir "
                         f"{str(output_dir)!r}: outputs could overwrite inputs")


def _list_inputs(input_dir, output_dir):
    """Images under input_dir, excluding a previous run's outputs when output_dir is inside."""
    return [path for path in imageio.list_images(input_dir, recursive=True,
                                                    include_broken_links=True)
            if not _is_within(path.resolve(), output_dir)]


# ---------------------------------------------------------------------------------------------
# Photos.
# ---------------------------------------------------------------------------------------------


def _prepared_photos(paths, image_shape, align, workers, pool, batch_size):
    """(face, entry) per path, in order, from `workers` threads or worker processes."""
    workers = workers or parallel.available_cores()
    # Photos are handed out only between the model's batches: with a batch's worth (or
    # more) ahead, the workers keep working while the model runs. Aligned crops are small;
    # whole photos (no alignment) may not be, and then only a few are held.
    window = batch_size + 2 * workers if align else None
    if pool == "thread":
        # OpenCV, dlib and TensorFlow release the GIL while they work.
        return parallel.ordered_map(lambda path: faces.prepare_photo(path, image_shape, align),
                                    paths, workers, window)
    detector_name = None
    if align:
        from semiadv.align import registry

        detector_name = registry.default_detector_name()  # This process's choice, for all.
    # Workers read, decode and align (numpy, OpenCV, dlib; no TensorFlow); the resize to
    # the export's input stays here, in the one function the threads use too.
    # No more workers than photos: each takes a while to start (a rerun may have few left).
    workers = min(workers, max(len(paths), 1))
    crops = parallel.process_map(
        functools.partial(photoprep.prepare_crop, size=image_shape[0], align=align,
                          detector_name=detector_name),
        paths, workers, initializer=photoprep.start_worker, initargs=(detector_name,),
        crashed=photoprep.crashed, window=window)
    return _finished(crops, image_shape)


def _finished(crops, image_shape):
    try:
        for prepared in crops:
            yield faces.finish_prepared(prepared, image_shape)
    finally:
        crops.close()  # Stops the workers when the consumer stops early.


def _write_outputs(batch, perturbed, scores, output_dir, save_aligned, report):
    for (relative, face, entry), image, score in zip(batch, perturbed, scores):
        try:
            imageio.write_image(output_dir / relative, image)
            if save_aligned:
                imageio.write_image(output_dir / ALIGNED_DIR / relative, face)
        except (OSError, ValueError) as error:
            entry.update(status="write_failed", error=str(error))
        else:
            entry.update(status="perturbed", male_score=float(score))
        report["files"][relative] = entry


def _run_batch(signature, batch, output_dir, save_aligned, report):
    images = tf.constant(np.stack([face for _, face, _ in batch]))
    outputs = signature(image=images)
    _write_outputs(batch, outputs["perturbed"].numpy(), outputs["male_score"].numpy(),
                   output_dir, save_aligned, report)


# ---------------------------------------------------------------------------------------------
# Progress.
# ---------------------------------------------------------------------------------------------


class _Progress:
    """Logs done / total with rate and ETA at most every `_PROGRESS_SECONDS`."""

    def __init__(self, total):
        self.total = total
        self.start = self.last = time.monotonic()

    def update(self, done, force=False):
        now = time.monotonic()
        if not force and now - self.last < _PROGRESS_SECONDS:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        if rate > 0:
            logging.info("processed %d/%d photos, %.1f photos/s, ETA %.0f s", done, self.total,
                         rate, (self.total - done) / rate)
        else:
            logging.info("processed %d/%d photos", done, self.total)


def _write_report(output_dir, report):
    files.write_json_atomically(output_dir / perturb_report.REPORT_NAME, report, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Entry point.
# ---------------------------------------------------------------------------------------------


def perturb_folder(export_path, input_dir, output_dir, prototype="opposite", image_size=None,
                   save_aligned=False, align=True, batch_size=perturb_report.DEFAULT_BATCH_SIZE,
                   workers=None, overwrite=True, pool=DEFAULT_POOL):
    """Perturbs every photo of a folder (recursively) with an exported SAN.

    Args:
        export_path: A version dir written by `semiadv.export.writer.export_san`, or its
            model dir (the highest version is used).
        input_dir: Folder of photos; never written to.
        output_dir: Where perturbed photos go, under their relative names (the extension
            picks the format), with `perturb_report.json`. Must not be input_dir nor contain
            it; it may lie inside input_dir (its files are then not taken as inputs).
        prototype: Signature to use: "opposite" (hide gender), "neutral" or "same".
        image_size: Optional check: must equal the export's image size (read from the
            signature) when given.
        save_aligned: Also write the aligned, resized originals to output_dir/aligned/.
        align: Detect and align faces (photos without a face are skipped); False only
            resizes whole photos (for already aligned crops).
        batch_size: Photos per call of the signature.
        workers: Threads or processes reading and aligning photos (None: one per core).
        overwrite: False skips the photos whose output exists already (an earlier run's),
            counted in the report's "skipped_existing"; the report then lists this run's
            photos only, and a run that skips every photo leaves the earlier report as is.
        pool: Where photos are read and aligned: "thread" (threads of this process) or
            "process" (worker processes that import OpenCV and dlib but not TensorFlow,
            so they do not share this process's CPU with TensorFlow's thread pools;
            started for each call, and they need nothing from the caller's `__main__`).
            Both give the same faces and entries.

    Returns:
        The report: per relative file name `{"status", "male_score"?, "align_status"?,
        "error"?}` under "files", "counts" per status, "failed" (names not perturbed).
        Statuses: perturbed, unreadable, no_face, error (also: its worker process died
        preparing it), write_failed. A run stopped by an exception still writes the
        report of the photos written so far, with the error under "interrupted".

    Raises:
        ValueError: for refused folders, an unknown prototype, a size mismatch or an input
            folder without photos.
        FileNotFoundError / NotADirectoryError: for a missing export or input folder.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    _check_folders(input_dir, output_dir)
    loaded, signature, image_shape = locate.load_signature(export_path, prototype)
    if image_size is not None and image_size != image_shape[0]:
        raise ValueError(f"image_size={image_size} but the export takes {image_shape[0]}x"
                         f"{image_shape[1]} faces")
    paths = _list_inputs(input_dir, output_dir)
    if not paths:
        raise UserValueError(f"no photos in {str(input_dir)!r} (looked for "
                             f"{', '.join(imageio.IMAGE_EXTENSIONS)} files, recursively)")
    relatives = [path.relative_to(input_dir).as_posix() for path in paths]
    skipped_existing = 0
    if not overwrite:
        fresh = [(path, relative) for path, relative in zip(paths, relatives)
                 if not (output_dir / relative).exists()]
        skipped_existing = len(paths) - len(fresh)
        paths, relatives = [p for p, _ in fresh], [r for _, r in fresh]
    if save_aligned and any(r.split("/")[0] == ALIGNED_DIR for r in relatives):
        raise ValueError(f"input_dir has an {ALIGNED_DIR!r} sub-folder whose outputs would mix "
                         "with the aligned originals: run without save_aligned")

    output_dir.mkdir(parents=True, exist_ok=True)
    report = perturb_report.new_report(locate.resolve_export(export_path), prototype,
                                       image_shape, input_dir, align, skipped_existing)
    progress, batch = _Progress(len(paths)), []
    prepared = _prepared_photos(paths, image_shape, align, workers, pool, batch_size)
    try:
        for done, (path, relative, (face, entry)) in enumerate(zip(paths, relatives, prepared),
                                                              start=1):
            if face is None:
                logging.warning("skipped %s: %s", path, entry.get("error", entry["status"]))
                report["files"][relative] = entry
            else:
                batch.append((relative, face, entry))
            if len(batch) >= batch_size:
                _run_batch(signature, batch, output_dir, save_aligned, report)
                batch = []
            progress.update(done)
        if batch:
            _run_batch(signature, batch, output_dir, save_aligned, report)
    except BaseException as error:
        # What was written stays, and the report says which photos those are.
        report["interrupted"] = f"{type(error).__name__}: {error}"
        _write_report(output_dir, perturb_report.finish_report(report))
        raise
    finally:
        prepared.close()  # Stops the workers now, not when the generator is collected.
    progress.update(len(paths), force=True)
    del loaded  # Held until the last batch: the signature reads its variables.
    perturb_report.finish_report(report)
    if paths or not skipped_existing:  # A run with nothing left to do keeps the last report.
        _write_report(output_dir, report)
    return report
