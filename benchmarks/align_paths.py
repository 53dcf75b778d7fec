"""Where the dlib aligner's time goes: CPU time per photo by the path each photo takes.

  python benchmarks/align_paths.py [--every=1] [--image_size=64] [--name=align_paths]

One thread, on the in-the-wild CelebA identity photos (`../shared/faces/celeba_identities`):
each photo is aligned once with the default dlib detector (`face.align_face`) while every
HOG search and Haar cascade call is timed. Photos are grouped by the sequence of calls they
took (e.g. "hog1x+" found by the first HOG search; "hog1x- hog2x+" by the 2x search;
"... haar+" by the Haar cascades), and each group's count, mean ms per photo and share of the
total time is reported, together with the mean ms per call of each kind of call.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import _common
from _common import load_average, machine, table, write_results

PHOTOS = _common.REPO.parent / "shared" / "faces" / "celeba_identities"


class _Timed:
    """Wraps a detector call, appending (label, found?, seconds) to `calls`."""

    def __init__(self, function, label, calls):
        self._function, self._label, self._calls = function, label, calls

    def __call__(self, *args):
        start = time.perf_counter()
        result = self._function(*args)
        found = len(result[0] if isinstance(result, tuple) else result) > 0
        label = self._label(args) if callable(self._label) else self._label
        self._calls.append((label, found, time.perf_counter() - start))
        return result


class _Hog:
    """dlib's HOG detector with each `run` timed (its methods cannot be patched)."""

    def __init__(self, hog, calls):
        self.run = _Timed(hog.run, lambda args: f"hog{args[1] + 1}x", calls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=1, help="Every n-th photo.")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--name", default="align_paths")
    args = parser.parse_args()

    import cv2
    from semiadv.align import dlib_detector, face
    from semiadv.utils import imageio

    paths = sorted(p for p in PHOTOS.rglob("*") if p.is_file() and p.suffix.lower() in
                   (".jpg", ".jpeg", ".png"))[::args.every]
    if not paths:
        raise SystemExit(f"no photos under {PHOTOS}")
    detector = dlib_detector.DlibFaceDetector()
    calls = []
    detector._hog = _Hog(detector._hog, calls)
    detector._haar.detect_faces = _Timed(detector._haar.detect_faces, "haar", calls)
    load_before = load_average()
    # Warm-up: the first calls page in dlib's and OpenCV's code.
    for path in paths[:5]:
        face.align_face(imageio.read_image(path), args.image_size, detector)
    groups = collections.defaultdict(list)
    per_call = collections.defaultdict(list)
    total_cpu = 0.0
    for path in paths:
        rgb = imageio.read_image(path)
        calls.clear()
        start = time.process_time()
        result = face.align_face(rgb, args.image_size, detector)
        seconds = time.process_time() - start
        total_cpu += seconds
        key = " ".join(f"{label}{'+' if found else '-'}" for label, found, _ in calls)
        groups[(key, str(getattr(result.status, "value", result.status)))].append(seconds)
        for label, _, call_seconds in calls:
            per_call[label].append(call_seconds)
    count = len(paths)
    paths_rows = [
        {"calls": key, "status": status, "photos": len(values),
         "share of photos": f"{len(values) / count:.1%}",
         "ms / photo": round(1000 * sum(values) / len(values), 1),
         "share of time": f"{sum(values) / total_cpu:.1%}"}
        for (key, status), values in sorted(groups.items(), key=lambda item: -sum(item[1]))]
    call_rows = [{"call": label, "calls": len(values),
                  "ms / call": round(1000 * sum(values) / len(values), 1),
                  "ms per photo (all photos)": round(1000 * sum(values) / count, 2)}
                 for label, values in per_call.items()]
    print(f"{count} photos, {1000 * total_cpu / count:.1f} ms of CPU per photo (one thread)")
    print(table(paths_rows, list(paths_rows[0])))
    print(table(call_rows, list(call_rows[0])))
    write_results(args.name, {
        "command": "python benchmarks/align_paths.py " + " ".join(
            f"--{key}={value}" for key, value in vars(args).items()),
        "machine": machine(), "load_before": load_before,
        "photos": count, "cpu_ms_per_photo": 1000 * total_cpu / count,
        "paths": paths_rows, "calls": call_rows})


if __name__ == "__main__":
    main()
