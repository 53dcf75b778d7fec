"""semiadv-perturb's job: applies an exported SAN to a folder of photos.

Each photo is read and aligned by `semiadv.perturb.faces`, its faces perturbed in batches
through one signature of the export (`semiadv.export.locate.load_signature`), and written under
the same relative name in the output folder, next to `perturb_report.json`. Two outputs:
"photo" (the default when aligning) writes the whole photo at its own size and format with
every face edited (`semiadv.perturb.photo`), without its metadata unless asked; "crop" writes
the aligned crop of the largest face (or, without alignment, the resized photo). Bad photos
are reported and skipped; inputs are never written to.
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
from semiadv.perturb import outputs as outputs_lib
from semiadv.perturb import photo as photo_lib
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
OUTPUTS = outputs_lib.OUTPUTS
DEFAULT_MAX_FACES = outputs_lib.DEFAULT_MAX_FACES
# A batch of the photo output is run early once the decoded photos waiting for it take this
# many bytes: faces are small, but the photos they are written back to may not be.
_MAX_HELD_BYTES = 300_000_000
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


def _list_inputs(input_dir, output_dir, extensions=imageio.IMAGE_EXTENSIONS):
    """Images under input_dir, excluding a previous run's outputs when output_dir is inside."""
    return [path for path in imageio.list_images(input_dir, recursive=True,
                                                    include_broken_links=True,
                                                    extensions=extensions)
            if not _is_within(path.resolve(), output_dir)]



# ---------------------------------------------------------------------------------------------
# Photos.
# ---------------------------------------------------------------------------------------------


def _prepared_photos(paths, image_shape, align, workers, pool, batch_size, photo_output,
                     max_faces, keep_metadata):
    """(face or PhotoFaces, entry) per path, in order, from `workers` threads or worker
    processes."""
    workers = workers or parallel.available_cores()
    # Photos are handed out only between the model's batches: with a batch's worth (or
    # more) ahead, the workers keep working while the model runs. Aligned crops are small;
    # whole photos (no alignment, or the photo output) may not be, and then only a few are
    # held.
    window = batch_size + 2 * workers if align and not photo_output else None
    if pool == "thread":
        # OpenCV, dlib and TensorFlow release the GIL while they work.
        if photo_output:
            def prepare(path):
                return faces.prepare_photo_faces(path, image_shape, max_faces, keep_metadata)
        else:
            def prepare(path):
                return faces.prepare_photo(path, image_shape, align)
        return parallel.ordered_map(prepare, paths, workers, window)
    detector_name = None
    if align:
        from semiadv.align import registry

        detector_name = registry.default_detector_name()  # This process's choice, for all.
    # Workers read, decode and align (numpy, OpenCV, dlib; no TensorFlow); the resize to
    # the export's input stays here, in the one function the threads use too.
    # No more workers than photos: each takes a while to start (a rerun may have few left).
    workers = min(workers, max(len(paths), 1))
    if photo_output:
        step = functools.partial(photoprep.prepare_faces, size=image_shape[0],
                                 max_faces=max_faces, keep_metadata=keep_metadata,
                                 detector_name=detector_name)
        finish = faces.finish_photo_faces
    else:
        step = functools.partial(photoprep.prepare_crop, size=image_shape[0], align=align,
                                 detector_name=detector_name)
        finish = faces.finish_prepared
    prepared = parallel.process_map(
        step, paths, workers, initializer=photoprep.start_worker, initargs=(detector_name,),
        crashed=photoprep.crashed, window=window)
    return _finished(prepared, image_shape, finish)


def _finished(prepared, image_shape, finish):
    try:
        for result in prepared:
            yield finish(result, image_shape)
    finally:
        prepared.close()  # Stops the workers when the consumer stops early.


def _write_outputs(batch, perturbed, scores, output_dir, save_aligned, jpeg_quality, report):
    for (relative, face, entry), image, score in zip(batch, perturbed, scores):
        try:
            files.write_bytes_atomically(
                output_dir / relative, imageio.encode_image(relative, image, jpeg_quality))
            if save_aligned:
                imageio.write_image(output_dir / ALIGNED_DIR / relative, face)
        except (OSError, ValueError) as error:
            entry.update(status="write_failed", error=str(error))
        else:
            entry.update(status="perturbed", male_score=float(score))
        report["files"][relative] = entry


def _run_batch(signature, batch, output_dir, save_aligned, jpeg_quality, report):
    images = tf.constant(np.stack([face for _, face, _ in batch]))
    outputs = signature(image=images)
    _write_outputs(batch, outputs["perturbed"].numpy(), outputs["male_score"].numpy(),
                   output_dir, save_aligned, jpeg_quality, report)


def aligned_face_name(relative, index):
    """Where the photo output's --save_aligned writes face `index` of photo `relative`
    (under ALIGNED_DIR): `<name>.face<index><extension>`."""
    stem, dot, extension = relative.rpartition(".")
    return f"{stem}.face{index}.{extension}" if dot else f"{relative}.face{index}"


def _write_photo(relative, photo_faces, perturbed, output_dir, save_aligned, jpeg_quality):
    """Writes the edited photo (and the aligned originals); returns the file written."""
    changes = [out - face for out, face in zip(perturbed, photo_faces.faces)]
    data = photo_lib.encode_edited(relative, photo_faces.pixels, changes,
                                   photo_faces.transforms, photo_faces.metadata, jpeg_quality)
    files.write_bytes_atomically(output_dir / relative, data)
    if save_aligned:
        for index, face in enumerate(photo_faces.faces):
            imageio.write_image(output_dir / ALIGNED_DIR / aligned_face_name(relative, index),
                                face)


def _naming(error, path):
    """The error's message, with the file it concerns when it does not say."""
    message = str(error)
    return message if str(path) in message or path.name in message else f"{path}: {message}"


def _run_photo_batch(signature, batch, output_dir, save_aligned, jpeg_quality, report):
    """Perturbs every face of the batch's photos in one call and writes the photos back."""
    inputs = np.stack([face for _, photo_faces, _ in batch for face in photo_faces.faces])
    outputs = signature(image=tf.constant(inputs))
    perturbed, scores = outputs["perturbed"].numpy(), outputs["male_score"].numpy()
    firsts = np.cumsum([0] + [len(photo_faces.faces) for _, photo_faces, _ in batch])

    def write(index):
        relative, photo_faces, entry = batch[index]
        mine = slice(firsts[index], firsts[index + 1])
        try:
            _write_photo(relative, photo_faces, perturbed[mine], output_dir, save_aligned,
                         jpeg_quality)
        except (OSError, ValueError) as error:
            entry.update(status="write_failed", error=_naming(error, output_dir / relative))
        else:
            entry.update(status="perturbed", faces=len(photo_faces.faces),
                         male_score=float(scores[mine][0]),
                         male_scores=[float(score) for score in scores[mine]])
        return relative, entry

    # Warping and encoding a whole photo costs more than its faces' share of the model call
    # (a 12 Mpx JPEG: ~0.1 s); OpenCV and numpy release the GIL, so threads share it out.
    for relative, entry in parallel.ordered_map(write, range(len(batch)),
                                                min(len(batch), parallel.available_cores())):
        report["files"][relative] = entry


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


def _batch_is_full(batch, batch_size, photo_output):
    if not photo_output:
        return len(batch) >= batch_size
    return (sum(len(item.faces) for _, item, _ in batch) >= batch_size
            or sum(item.pixels.nbytes for _, item, _ in batch) >= _MAX_HELD_BYTES)


def _write_report(output_dir, report):
    files.write_json_atomically(output_dir / perturb_report.REPORT_NAME, report, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Entry point.
# ---------------------------------------------------------------------------------------------


def perturb_folder(export_path, input_dir, output_dir, prototype="opposite", image_size=None,
                   save_aligned=False, align=True, batch_size=perturb_report.DEFAULT_BATCH_SIZE,
                   workers=None, overwrite=True, pool=DEFAULT_POOL, output=None,
                   max_faces=DEFAULT_MAX_FACES, keep_metadata=False,
                   jpeg_quality=outputs_lib.DEFAULT_JPEG_QUALITY):
    """Perturbs every photo of a folder (recursively) with an exported SAN.

    Args:
        export_path: A version dir written by `semiadv.export.writer.export_san`, or its
            model dir (the highest version is used).
        input_dir: Folder of photos; never written to.
        output_dir: Where perturbed photos go, under their relative names (the extension
            picks the format: the input's), with `perturb_report.json`. Must not be input_dir
            nor contain it; it may lie inside input_dir (its files are then not taken as
            inputs).
        prototype: Signature to use: "opposite" (hide gender), "neutral" or "same".
        image_size: Optional check: must equal the export's image size (read from the
            signature) when given.
        save_aligned: Also write the aligned, resized originals to output_dir/aligned/
            (the photo output: each face's, named by `aligned_face_name`).
        align: Detect and align faces (photos without a face are skipped); False only
            resizes whole photos (for already aligned crops; crop output only).
        batch_size: Photos (the photo output: faces, at least) per call of the signature.
        workers: Threads or processes reading and aligning photos (None: one per core).
        overwrite: False skips the photos whose output exists already (an earlier run's),
            counted in the report's "skipped_existing"; the report then lists this run's
            photos only, and a run that skips every photo leaves the earlier report as is.
        pool: Where photos are read and aligned: "thread" (threads of this process) or
            "process" (worker processes that import OpenCV and dlib but not TensorFlow,
            so they do not share this process's CPU with TensorFlow's thread pools;
            started for each call, and they need nothing from the caller's `__main__`).
            Both give the same faces and entries.
        output: "photo" (default when aligning): the whole photo, same size and format,
            with the change of each face (up to `max_faces`, largest first) added through
            a soft face mask (`semiadv.perturb.photo`); pixels outside the masks keep
            their values. "crop" (default without alignment): the aligned crop of the
            largest face at the export's size.
        max_faces: The photo output's most faces edited per photo.
        keep_metadata: The photo output copies the input's EXIF (orientation set upright,
            thumbnail removed), XMP, IPTC, comments and PNG text chunks; by default the
            outputs carry only the ICC colour profile (no GPS positions, no camera
            serials). JPEG and PNG only (`semiadv.utils.metadata`).
        jpeg_quality: Quality (1..100) of JPEG outputs.

    Returns:
        The report: per relative file name `{"status", "male_score"?, "align_status"?,
        "error"?}` (the photo output adds "faces", the number edited, and "male_scores",
        per face, largest first; "note" for a CMYK JPEG) under "files", "counts" per
        status, "failed" (names not perturbed), "output". Statuses: perturbed, unreadable,
        no_face (not written: a privacy tool does not pass an unedited photo on),
        unsupported (a GIF, TIFF or HEIF file, which are not read; an animated PNG or
        WebP, photo output), too_large (a JPEG with faces
        over 50 Mpx, photo output: only a reduced decode fits), error (also: its worker
        process died preparing it), write_failed. A run stopped by an exception still
        writes the report of the photos written so far, with the error under
        "interrupted".

    Raises:
        ValueError: for refused folders, an unknown prototype or output, a size mismatch,
            the photo output without alignment, metadata kept with the crop output, a bad
            max_faces or jpeg_quality, or an input folder without photos.
        FileNotFoundError / NotADirectoryError: for a missing export or input folder.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    output = outputs_lib.check_output(output, align, max_faces, keep_metadata, jpeg_quality)
    photo_output = output == "photo"
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
                                       image_shape, input_dir, align, skipped_existing,
                                       output=output)
    for path in _list_inputs(input_dir, output_dir, imageio.UNREAD_PHOTO_EXTENSIONS):
        report["files"][path.relative_to(input_dir).as_posix()] = photoprep.unread_photo_entry(path)
    run = functools.partial(_run_photo_batch if photo_output else _run_batch, signature,
                            output_dir=output_dir, save_aligned=save_aligned,
                            jpeg_quality=jpeg_quality, report=report)
    progress, batch = _Progress(len(paths)), []
    prepared = _prepared_photos(paths, image_shape, align, workers, pool, batch_size,
                                photo_output, max_faces, keep_metadata)
    try:
        for done, (path, relative, (item, entry)) in enumerate(zip(paths, relatives, prepared),
                                                              start=1):
            if item is None:
                logging.warning("skipped %s: %s", path, entry.get("error", entry["status"]))
                report["files"][relative] = entry
            else:
                batch.append((relative, item, entry))
            if _batch_is_full(batch, batch_size, photo_output):
                run(batch)
                batch = []
            progress.update(done)
        if batch:
            run(batch)
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
