"""Aligning a folder tree of photos into crops, with a JSON report (`semiadv-align`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Union

from absl import logging

from semiadv.align import face, registry
from semiadv.align.detector import FaceDetector
from semiadv.utils import files, imageio, parallel

REPORT_NAME = "align_report.json"


def align_folder(
    input_dir: Union[str, Path],
    output_dir: Union[str, Path],
    image_size: int,
    detector: Optional[FaceDetector] = None,
    progress: bool = True,
    progress_every: int = 200,
    workers: Optional[int] = None,
    detector_name: Optional[str] = None,
) -> dict:
    """Aligns every image under `input_dir` into `output_dir`.

    Sub-folders and file names are kept (`input_dir/a/b.jpg` ->
    `output_dir/a/b.jpg`, same format). Each crop is written atomically; a
    "no_face" or unreadable file gets no output. Unreadable or corrupt files
    are recorded with their reason and never stop the run. The report is
    written to `output_dir/align_report.json`:
    {"image_size": S, "detector": name, "counts": {"aligned": n, "fallback": n,
    "no_face": n, "unreadable": n}, "eyes_from": {"landmarks": n, "cascade": n},
    "files": {relative/path: {"status": s, "eyes_from": e, "error": e}}}
    ("eyes_from" only for aligned files, "error" only for unreadable ones;
    "detector" is the detector's name, or its class name if one was given).

    Args:
      input_dir: folder of photos, scanned recursively. If `output_dir` is
        inside it, that sub-folder is not scanned.
      output_dir: where crops and the report go; must not be `input_dir`.
      image_size: side of the square crops.
      detector: a FaceDetector instance; overrides `detector_name`.
      progress: log a progress line (rate, ETA) every `progress_every` files.
      progress_every: files between progress lines.
      workers: threads aligning files (None: one per core). OpenCV releases the GIL, so
        threads use every core. A given `detector` is shared by the threads: pass
        workers=1 unless it is thread-safe (named detectors are one per thread).
      detector_name: a name in `registry.DETECTORS`, each thread using its own
        (None: `registry.default_detector_name()`).

    Returns:
      The report, as written.

    Raises:
      FileNotFoundError / NotADirectoryError: if `input_dir` is not a folder.
      ValueError: if `output_dir` is `input_dir`, or there are no images.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if detector is None:
        detector_name = detector_name or registry.default_detector_name()
        registry.default_detector(detector_name)  # a missing extra fails here, before any work
    images = _images_to_align(input_dir, output_dir)
    def align_one(path):
        # Without a detector, each thread uses its own (`registry.default_detector`).
        return _align_file(path, output_dir / path.relative_to(input_dir), image_size,
                           detector or registry.default_detector(detector_name))

    report = {"image_size": image_size,
              "detector": detector_name if detector is None else type(detector).__name__,
              "counts": {s: 0 for s in (*face.STATUSES, "unreadable")}, "eyes_from": {}, "files": {}}
    started = time.monotonic()
    # In input order, so the report is the same with any number of workers.
    entries = parallel.ordered_map(align_one, images, workers)
    for index, (path, entry) in enumerate(zip(images, entries), start=1):
        relative = path.relative_to(input_dir)
        report["counts"][entry["status"]] += 1
        if "eyes_from" in entry:
            report["eyes_from"][entry["eyes_from"]] = report["eyes_from"].get(entry["eyes_from"], 0) + 1
        report["files"][relative.as_posix()] = entry
        if progress and (index % progress_every == 0 or index == len(images)):
            _log_progress(index, len(images), time.monotonic() - started, report["counts"])
    files.write_json_atomically(output_dir / REPORT_NAME, report, indent=1)
    return report


def _images_to_align(input_dir: Path, output_dir: Path) -> list[Path]:
    """Lists input images, refusing to write into the input folder itself."""
    if not input_dir.is_dir():
        imageio.list_images(input_dir)  # raises the clear missing/not-a-folder error
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(f"output folder {str(output_dir)!r} is the input folder; choose another so no photo is overwritten")
    # Crops from an earlier run into a sub-folder of the input are not input.
    # Compared on relative paths, so symlinked photos are judged by where
    # they appear, not where they point.
    resolved_input, resolved_output = input_dir.resolve(), output_dir.resolve()
    output_parts = resolved_output.relative_to(resolved_input).parts if resolved_output.is_relative_to(resolved_input) else None
    images = [
        path
        for path in imageio.list_images(input_dir, recursive=True, include_broken_links=True)
        if output_parts is None or path.relative_to(input_dir).parts[: len(output_parts)] != output_parts
    ]
    if not images:
        raise ValueError(f"no images in {str(input_dir)!r} (extensions {', '.join(imageio.IMAGE_EXTENSIONS)})")
    return images


def _align_file(path: Path, output_path: Path, image_size: int, detector: FaceDetector) -> dict:
    """Aligns one file, writes its crop, returns its report entry."""
    try:
        rgb = imageio.read_image(path)
    except imageio.ImageReadError as error:
        logging.warning("%s", error)
        return {"status": "unreadable", "error": error.reason}
    result = face.align_face(rgb, image_size, detector)
    if result.crop is not None:
        imageio.write_image(output_path, result.crop)
    if result.eyes_from is not None:
        return {"status": result.status, "eyes_from": result.eyes_from}
    return {"status": result.status}


def _log_progress(done: int, total: int, elapsed: float, counts: dict) -> None:
    """Logs files done, rate and estimated time left."""
    rate = done / elapsed if elapsed > 0 else float("inf")
    remaining = (total - done) / rate if rate > 0 else 0.0
    logging.info(
        "aligned %d/%d files (%.1f files/s, ETA %s): %s",
        done,
        total,
        rate,
        _format_duration(remaining),
        ", ".join(f"{name} {count}" for name, count in counts.items()),
    )


def _format_duration(seconds: float) -> str:
    """Formats seconds as e.g. '1h02m03s', '4m05s' or '6s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
