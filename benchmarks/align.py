"""Face alignment: dlib (HOG faces, 5-point landmarks), OpenCV's Haar cascades, MediaPipe.

  python benchmarks/align.py [--image_size=64] [--detectors=dlib,dlib-noweak,haar,mediapipe]
      [--every=1]
      [--perturb_every=4] [--workers=N] [--pools=process,thread] [--outputs=crop,photo]
      [--skip_align] [--name=align]
  python benchmarks/align.py --framing [--framing_every=100] [--every=1] [--name=align_framing]
  python benchmarks/align.py --align_cpu [--detectors=mediapipe] [--baseline=OLD_mediapipe.py]
      [--every=4] [--repeats=3] [--name=align_cpu]

On the in-the-wild CelebA identity photos (`../shared/faces/celeba_identities`, 1,672 photos
of 97 people), for each detector, in one run:

  align only   `semiadv.align.folder.align_folder` (a thread per core): share of photos cropped, share
               eye-aligned and eye-aligned by landmarks, photos/s, process CPU ms per photo
               (all threads; meaningful under load where photos/s is not)
  end to end   `perturb.perturb_folder` (read, align, perturb, write PNG; a worker process
               or thread per core, once per `--pools` entry) with an export of a random SAN
               of the UTKFace recipe's widths (weights do not change the cost) on every
               `--perturb_every`-th photo, photos/s and CPU ms per photo (this process's
               threads and its worker processes, which include their start-up; the
               workers' share apart)
  identity     dlib's face recognition ResNet (semiadv/evaluation/dlib_matcher.py) on the
               crops: TMR at FMR 1% over genuine / impostor pairs of the held-out identities
               (the `test` split of a `folder:` spec with the default DataConfig) and of all
               97, on the photos every detector cropped (the same pairs for all)

--framing: where each detector's eyes put the crop, against dlib's eye-corner means (the
convention of UTKFace's canonical eye points). BlazeFace's keypoint offsets
(`mediapipe.KEYPOINT_EYE_OFFSETS` and `CLOSE_UP_KEYPOINT_EYE_OFFSETS`) are fitted (medians)
on UTKFace crops 0, N, 2N, ... (N = --framing_every) and the CelebA photos of the identities
outside the `test` split, and measured on the disjoint crops N/2, 3N/2, ... and the test
identities' photos: per face, the mean distance of its two eyes to dlib's in units of dlib's
eye distance; the shift of a 200-px crop's centre from dlib's crop; and on UTKFace, how far
re-aligning a crop moves its centre (0 for eyes exactly on the canonical points).

--align_cpu: CPU ms per photo of `align_face` (64x64), one thread, for each detector on the
same photos (every --every-th), the detectors taking turns photo by photo and the whole pass
repeated --repeats times (median of the passes), so load drifts hit all alike.
--baseline adds "baseline": `MediaPipeFaceDetector` from another copy of
semiadv/align/mediapipe.py (e.g. `git show REV:semiadv/align/mediapipe.py > old.py`), a
before/after of one change in one run; its crops are compared with "mediapipe"'s.

Detectors: "dlib", "haar" and "mediapipe" (as `--detector` names them); "dlib-noweak", the
dlib detector before weak HOG faces were taken (align only and identity: a before/after check);
"mediapipe-mesh" (eyes from Face Mesh's eye corners) and "mediapipe-short" (BlazeFace's
short-range model first, then the full-range one) and "mediapipe-raw" (BlazeFace's eye
keypoints not moved onto the eye-corner means, as before §9h), the alternatives to the
MediaPipe detector's defaults (align only and identity).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common
from _common import load_average, machine, table, write_results

RECIPE = dict(encoder_filters=(8, 12), decoder_filters=(64, 32), classifier_width=0.5)
# Detector variants for before/after comparisons (align only and identity; end to end
# runs only for the named detectors, which semiadv-perturb can use).
def _dlib_without_weak_faces():
    """The dlib detector without weak HOG faces (straight to the Haar cascades)."""
    from semiadv.align import dlib_detector

    return dlib_detector.DlibFaceDetector(candidate_threshold=None)


def _mediapipe_mesh_eyes():
    """The MediaPipe detector with Face Mesh's eye corners for eyes."""
    from semiadv.align import mediapipe

    return mediapipe.MediaPipeFaceDetector(eyes="mesh")


def _mediapipe_short_range():
    """The MediaPipe detector trying BlazeFace's short-range model first."""
    from semiadv.align import mediapipe

    return mediapipe.MediaPipeFaceDetector(models=("short", "full"))


def _mediapipe_raw_keypoints():
    """The MediaPipe detector with BlazeFace's eye keypoints as they are (before §9h)."""
    from semiadv.align import mediapipe

    return mediapipe.MediaPipeFaceDetector(move_keypoints=False)


VARIANTS = {"dlib-noweak": _dlib_without_weak_faces, "mediapipe-mesh": _mediapipe_mesh_eyes,
            "mediapipe-short": _mediapipe_short_range, "mediapipe-raw": _mediapipe_raw_keypoints}


class _PerThread:
    """A FaceDetector made per thread by `factory` (dlib's objects are one per thread)."""

    def __init__(self, factory):
        self._factory, self._local = factory, threading.local()

    def _detector(self):
        if not hasattr(self._local, "detector"):
            self._local.detector = self._factory()
        return self._local.detector

    @property
    def wants_rgb(self):
        return getattr(self._detector(), "wants_rgb", False)

    @property
    def eyes_from(self):
        return getattr(self._detector(), "eyes_from", "detector")

    def detect_faces(self, gray):
        return self._detector().detect_faces(gray)

    def detect_eyes(self, gray, face_box):
        return self._detector().detect_eyes(gray, face_box)

    def locate_eyes(self, gray, face_box):
        detector = self._detector()
        if hasattr(detector, "locate_eyes"):
            return detector.locate_eyes(gray, face_box)
        eyes = detector.detect_eyes(gray, face_box)
        return eyes, None if eyes is None else self.eyes_from


def _export(work: Path, size: int) -> Path:
    """A random SAN with the UTKFace recipe's widths, exported as `semiadv-perturb` reads it."""
    import keras
    import numpy as np

    from semiadv.export import writer
    from semiadv.models import autoencoders, gender_classifiers
    from semiadv.prototypes import average

    rng = np.random.default_rng(0)
    male_face, female_face = rng.uniform(0.3, 0.7, (2, size, size, 3)).astype(np.float32)
    protos = average.Prototypes(male_face, female_face, (male_face + female_face) / 2, 0.5,
                                (1, 1))
    keras.utils.set_random_seed(0)
    autoencoder = autoencoders.build_autoencoder(size, 3, RECIPE["encoder_filters"],
                                                 RECIPE["decoder_filters"])
    gender = gender_classifiers.build_gender_classifier(size, 3, width=RECIPE["classifier_width"])
    return writer.export_san(autoencoder, gender, protos, work / "exports", "san")


def _identity_rows(celeba: Path, crops: dict[str, Path], reports: dict[str, dict]) -> list[dict]:
    """TMR@FMR 1% of dlib's matcher on each detector's crops, on the photos all cropped."""
    import numpy as np

    from semiadv.data import splits
    from semiadv.utils import imageio
    from semiadv.config import DataConfig
    from semiadv.evaluation import dlib_matcher, metrics

    folders = sorted(d.name for d in celeba.iterdir() if d.is_dir())  # identities
    config = DataConfig()
    # The same split a `folder:` spec makes (identities numbered by sorted folder name).
    held_out = set(np.array(folders)[splits.split_of([f"id:{i}" for i in range(len(folders))],
                                                     config.seed, config.validation_fraction,
                                                     config.test_fraction) == "test"])
    common = sorted(set.intersection(*(
        {name for name, entry in report["files"].items()
         if entry["status"] in ("aligned", "fallback")} for report in reports.values())))
    matcher = dlib_matcher.make()
    rows = []
    for subset, names in (("held-out identities", [n for n in common if n.split("/")[0] in held_out]),
                          ("all 97 identities", common)):
        identity = np.array([folders.index(n.split("/")[0]) for n in names])
        genuine, impostor = metrics.make_pairs(identity, len(names), impostors_per_probe=200)
        for detector, folder in crops.items():
            faces = np.stack([imageio.read_image(folder / n) for n in names]).astype(np.float32) / 255
            embeddings = matcher(faces)
            scores = lambda pairs: metrics.similarity(embeddings, embeddings, pairs)  # noqa: E731
            rows.append({"detector": detector, "subset": subset, "photos": len(names),
                         "identities": len(set(identity)), "genuine_pairs": len(genuine),
                         "impostor_pairs": len(impostor),
                         "tmr_at_fmr_1pct": metrics.tmr_at_fmr(scores(genuine), scores(impostor),
                                                               0.01),
                         "auc": metrics.roc_auc(scores(genuine), scores(impostor))})
            print(f"identity, {subset}, {detector}: TMR@FMR1% {rows[-1]['tmr_at_fmr_1pct']:.3f}",
                  flush=True)
    return rows


def _cpu_seconds() -> tuple[float, float]:
    """CPU time of this process, and of its finished (reaped) children: worker processes."""
    times = os.times()
    return times.user + times.system, times.children_user + times.children_system


def _align_only(args, name, celeba, work, rows, crops, reports):
    """`align_folder` on every photo with one detector: a row, its crops and report."""
    from semiadv.align import folder, registry

    if name in VARIANTS:
        detector = _PerThread(VARIANTS[name])
        kwargs = {"detector": detector}
    else:
        registry.default_detector(name)  # model loading is not part of the rate
        kwargs = {"detector_name": name}
    start, cpu = time.perf_counter(), time.process_time()
    report = folder.align_folder(celeba, work / f"aligned_{name}", args.image_size,
                                 progress=False, workers=args.workers, **kwargs)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    counts, total = report["counts"], len(report["files"])
    crops[name], reports[name] = work / f"aligned_{name}", report
    # Eyes from a face model's points (dlib's landmarks, BlazeFace's keypoints, Face Mesh),
    # not from the Haar eye cascades.
    landmarks = sum(n for source, n in report["eyes_from"].items() if source != "cascade")
    rows.append({"detector": name, "path": "semiadv-align", "photos": total,
                 "cropped": (counts["aligned"] + counts["fallback"]) / total,
                 "eye_aligned": counts["aligned"] / total,
                 "by_landmarks": landmarks / total, "no_face": counts["no_face"],
                 "seconds": seconds, "photos_per_s": total / seconds,
                 "cpu_ms_per_photo": 1e3 * cpu / total, "load_average": load_average()})
    print(f"align {name}: {rows[-1]}", flush=True)


# Crop side at which --framing quotes crop-centre shifts (UTKFace's own crops are 200 px).
FRAMING_CROP = 200


def _landmark_eyes(photos, detector, source):
    """({photo: [2, 2] eyes}, {photo: longer side}) of the photos `align_face` eye-aligns with
    eyes from `source`."""
    import numpy as np

    from semiadv.align import face
    from semiadv.utils import imageio

    eyes, sides = {}, {}
    for photo in photos:
        image = imageio.read_image(photo)
        result = face.align_face(image, FRAMING_CROP, detector)
        if result.status == "aligned" and result.eyes_from == source:
            eyes[photo], sides[photo] = np.array(result.eyes), max(image.shape[:2])
    return eyes, sides


def _centre_shift(eyes, reference):
    """How far a crop's centre lies from the reference eyes' crop centre, in crop pixels."""
    import cv2
    import numpy as np

    from semiadv.align import geometry

    canonical = geometry.canonical_eye_points(FRAMING_CROP)
    centre = np.full((1, 2), (FRAMING_CROP - 1) / 2)
    to_photo = cv2.invertAffineTransform(geometry.similarity_from_points(eyes, canonical))
    to_reference = geometry.similarity_from_points(reference, canonical)
    moved = geometry.apply_affine(to_reference, geometry.apply_affine(to_photo, centre))
    return float(np.linalg.norm(moved - centre))


def _in_face_frame(eyes, reference):
    """[2, 2]: reference - eyes per eye, along and across the eyes' line, in eye distances."""
    import numpy as np

    along = eyes[1] - eyes[0]
    across = np.array([-along[1], along[0]])
    frame = np.stack([along, across]) / float(along @ along)
    return (reference - eyes) @ frame.T


def _framing_rows(subset, eyes_by_variant, reference, realign):
    """One row per variant: its eyes against the reference's, on the photos both have."""
    import numpy as np

    from semiadv.align import geometry

    canonical = geometry.canonical_eye_points(FRAMING_CROP)
    rows = []
    for variant, found in eyes_by_variant.items():
        common = sorted(set(found) & set(reference))
        errors = np.array([np.linalg.norm(found[p] - reference[p], axis=1)
                           / np.linalg.norm(reference[p][1] - reference[p][0]) for p in common])
        offsets = np.array([_in_face_frame(found[p], reference[p]) for p in common])
        row = {"subset": subset, "eyes": variant, "photos": len(common),
               "eye_error_median": float(np.median(errors.mean(axis=1))),
               "eye_error_p90": float(np.percentile(errors.mean(axis=1), 90)),
               "centre_shift_px_median": float(np.median([_centre_shift(found[p], reference[p])
                                                          for p in common])),
               "left_along_across": np.median(offsets[:, 0], axis=0).round(4).tolist(),
               "right_along_across": np.median(offsets[:, 1], axis=0).round(4).tolist()}
        if realign:  # the photos are crops at the canonical framing already
            row["realign_shift_px_median"] = float(np.median(
                [_centre_shift(found[p], canonical) for p in common]))
        rows.append(row)
        print(f"framing {subset}, {variant}: {row}", flush=True)
    return rows


def _held_out_identities(celeba: Path) -> set:
    """The CelebA identity folders in the `test` split of a `folder:` spec (default DataConfig)."""
    import numpy as np

    from semiadv.config import DataConfig
    from semiadv.data import splits

    folders = sorted(d.name for d in celeba.iterdir() if d.is_dir())
    config = DataConfig()
    return set(np.array(folders)[splits.split_of([f"id:{i}" for i in range(len(folders))],
                                                 config.seed, config.validation_fraction,
                                                 config.test_fraction) == "test"])


def _moved(keypoints, sides, offsets, close_up_offsets):
    """Keypoint eyes moved as `MediaPipeFaceDetector` moves them, with the given offsets."""
    import numpy as np

    from semiadv.align import mediapipe

    moved = {}
    for photo, eyes in keypoints.items():
        close_up = (np.hypot(*(eyes[1] - eyes[0]))
                    >= mediapipe.CLOSE_UP_EYE_DISTANCE * sides[photo])
        moved[photo] = mediapipe.offset_eyes(eyes, close_up_offsets if close_up else offsets)
    return moved


def _framing(args):
    """--framing: fits BlazeFace's keypoint offsets and measures them on held-out faces."""
    import numpy as np

    from semiadv.align import dlib_detector
    from semiadv.align import mediapipe

    faces = Path(args.faces)
    utkface = sorted((faces / "utkface").glob("*.jpg"))
    step = args.framing_every
    celeba_dir = faces / "celeba_identities"
    celeba = sorted(celeba_dir.glob("*/*.jpg"))[::args.every]
    held_out = _held_out_identities(celeba_dir)
    fit_sets = {"UTKFace": utkface[0::step],
                "CelebA": [p for p in celeba if p.parent.name not in held_out]}
    measure_sets = {f"UTKFace every {step}th from {step // 2}": utkface[step // 2::step],
                    "CelebA held-out identities": [p for p in celeba if p.parent.name in held_out]}
    dlib = dlib_detector.DlibFaceDetector()
    raw = mediapipe.MediaPipeFaceDetector(move_keypoints=False)
    mesh = mediapipe.MediaPipeFaceDetector(eyes="mesh")

    # Per fitted face: (close-up?, dlib's eyes in the keypoints' frame [2, 2]), by set.
    fit_faces = {}
    for name, photos in fit_sets.items():
        reference, _ = _landmark_eyes(photos, dlib, "landmarks")
        keypoints, sides = _landmark_eyes(photos, raw, "keypoints")
        fit_faces[name] = [(np.hypot(*(keypoints[p][1] - keypoints[p][0]))
                            >= mediapipe.CLOSE_UP_EYE_DISTANCE * sides[p],
                            _in_face_frame(keypoints[p], reference[p]))
                           for p in sorted(set(reference) & set(keypoints))]
    every = [face for faces_ in fit_faces.values() for face in faces_]
    fitted = {group: np.median([offsets for close_up, offsets in every if close_up == flag], axis=0)
              for group, flag in (("far", False), ("close-up", True))}
    utkface_only = np.median([offsets for _, offsets in fit_faces["UTKFace"]], axis=0)
    counts = {name: {"far": int(sum(not c for c, _ in f)), "close-up": int(sum(c for c, _ in f))}
              for name, f in fit_faces.items()}
    print(f"fitted on {counts}: far {fitted['far'].round(4).tolist()}, close-up "
          f"{fitted['close-up'].round(4).tolist()}; one offset on UTKFace alone "
          f"{utkface_only.round(4).tolist()} (in the module: {mediapipe.KEYPOINT_EYE_OFFSETS}, "
          f"{mediapipe.CLOSE_UP_KEYPOINT_EYE_OFFSETS})", flush=True)

    rows = []
    for subset, photos in measure_sets.items():
        start = time.perf_counter()
        reference, _ = _landmark_eyes(photos, dlib, "landmarks")
        keypoints, sides = _landmark_eyes(photos, raw, "keypoints")
        mesh_eyes, _ = _landmark_eyes(photos, mesh, "mesh")
        variants = {
            "BlazeFace keypoints": keypoints,
            "keypoints moved (the module's offsets)": _moved(
                keypoints, sides, mediapipe.KEYPOINT_EYE_OFFSETS,
                mediapipe.CLOSE_UP_KEYPOINT_EYE_OFFSETS),
            "keypoints moved (offsets fitted in this run)": _moved(
                keypoints, sides, fitted["far"], fitted["close-up"]),
            "keypoints moved (one offset fitted on UTKFace alone)": _moved(
                keypoints, sides, utkface_only, utkface_only),
            "Face Mesh eye corners": mesh_eyes,
            "dlib": reference}
        rows += _framing_rows(subset, variants, reference, realign=subset.startswith("UTKFace"))
        print(f"{subset}: {len(photos)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    print(table(rows, ["subset", "eyes", "photos", "eye_error_median", "eye_error_p90",
                       "centre_shift_px_median", "realign_shift_px_median", "left_along_across",
                       "right_along_across"]))
    return {"fitted_offsets": {k: v.tolist() for k, v in fitted.items()}, "fit_faces": counts,
            "utkface_only_offsets": utkface_only.tolist(),
            "module_offsets": [mediapipe.KEYPOINT_EYE_OFFSETS,
                               mediapipe.CLOSE_UP_KEYPOINT_EYE_OFFSETS], "rows": rows}


def _baseline_detector(path: str):
    """`MediaPipeFaceDetector` of another copy of semiadv/align/mediapipe.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mediapipe_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.MediaPipeFaceDetector()


def _align_cpu(args):
    """--align_cpu: CPU ms per photo of align_face per detector, in turns (see the docstring)."""
    import statistics

    import cv2
    import numpy as np

    from semiadv.align import face, registry
    from semiadv.utils import imageio

    cv2.setNumThreads(1)  # one thread, as each align worker
    photos = sorted((Path(args.faces) / "celeba_identities").glob("*/*.jpg"))[::args.every]
    images = [imageio.read_image(photo) for photo in photos]
    detectors = {name: VARIANTS[name]() if name in VARIANTS else registry.make_detector(name)
                 for name in args.detectors.split(",")}
    if args.baseline:
        detectors["baseline"] = _baseline_detector(args.baseline)
    for detector in detectors.values():  # warm-up
        face.align_face(images[0], args.image_size, detector)
    passes = {name: [] for name in detectors}
    crops = {name: [] for name in detectors}
    for repeat in range(args.repeats):
        seconds = dict.fromkeys(detectors, 0.0)
        for index, image in enumerate(images):
            names = list(detectors)
            for name in names[index % len(names):] + names[:index % len(names)]:
                start = time.thread_time()
                result = face.align_face(image, args.image_size, detectors[name])
                seconds[name] += time.thread_time() - start
                if repeat == 0:
                    crops[name].append(result.crop)
        for name in detectors:
            passes[name].append(1e3 * seconds[name] / len(images))
        print(f"pass {repeat}: {({name: round(ms[-1], 3) for name, ms in passes.items()})}, "
              f"load {load_average()}", flush=True)
    rows = [{"detector": name, "photos": len(images),
             "cpu_ms_per_photo": statistics.median(ms), "passes": [round(m, 3) for m in ms]}
            for name, ms in passes.items()]
    if "baseline" in crops and "mediapipe" in crops:
        same = sum((a is None and b is None)
                   or (a is not None and b is not None and np.array_equal(a, b))
                   for a, b in zip(crops["baseline"], crops["mediapipe"]))
        print(f"crops identical to the baseline's: {same} of {len(images)}")
        rows[-1]["identical_crops_to_mediapipe"] = same
    print(table(rows, ["detector", "photos", "cpu_ms_per_photo", "passes",
                       "identical_crops_to_mediapipe"]))
    return {"rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--detectors", default="dlib,haar",
                        help=f"comma-separated: {', '.join(('haar', 'dlib', 'mediapipe', *VARIANTS))}")
    parser.add_argument("--perturb_every", type=int, default=4,
                        help="end to end on every N-th photo (Haar is slow); 0: skip")
    parser.add_argument("--every", type=int, default=1,
                        help="use only every N-th photo throughout (a quick check)")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads or worker processes (default: one per core)")
    parser.add_argument("--pools", default="process,thread",
                        help="end to end with each of these perturb_folder pools, in this order")
    parser.add_argument("--outputs", default="crop",
                        help="end to end with each of these semiadv-perturb --output values "
                             "(crop: the aligned crops; photo: every face edited in the photo)")
    parser.add_argument("--skip_align", action="store_true",
                        help="skip the align-only runs and identity: end to end only")
    parser.add_argument("--name", default="align", help="results file benchmarks/results/NAME.json")
    parser.add_argument("--faces", default=str(_common.REPO.parent / "shared" / "faces"))
    parser.add_argument("--framing", action="store_true",
                        help="fit and measure the MediaPipe eyes' framing against dlib's (only)")
    parser.add_argument("--framing_every", type=int, default=100,
                        help="--framing: fit on every N-th UTKFace crop, measure on those between")
    parser.add_argument("--align_cpu", action="store_true",
                        help="CPU ms per photo of align_face per detector, in turns (only)")
    parser.add_argument("--baseline", default=None,
                        help="--align_cpu: another copy of mediapipe.py, timed as 'baseline'")
    parser.add_argument("--repeats", type=int, default=3, help="--align_cpu: passes")
    args = parser.parse_args()
    if args.align_cpu:
        info = machine()
        path = write_results(args.name, {"machine": info, "args": vars(args), **_align_cpu(args)})
        print(f"wrote {path}")
        return
    if args.framing:
        info = machine()
        path = write_results(args.name, {"machine": info, "args": vars(args), **_framing(args)})
        print(f"wrote {path}")
        return

    from semiadv.align import registry
    from semiadv.export import locate
    from semiadv.perturb import faces
    from semiadv.perturb import folder as perturb

    info = machine()
    celeba = Path(args.faces) / "celeba_identities"
    photos = sorted(celeba.glob("*/*.jpg"))[::args.every]
    scratch = tempfile.TemporaryDirectory()
    work = Path(scratch.name)
    for folder, chosen in (("all", photos), ("subset", photos[::max(args.perturb_every, 1)])):
        for photo in chosen:
            target = work / folder / photo.relative_to(celeba)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(photo)
    subset = work / "subset"
    if args.every != 1:
        celeba = work / "all"  # symlinks, so the identity folders are the same
    version = _export(work, args.image_size)
    locate.load_signature(version, "opposite")  # warm the loader once for every detector
    # and the resize's trace, so neither is part of the first run's rate
    faces.prepare_photo(photos[0], (args.image_size, args.image_size, 3), align=False)

    rows, crops, reports = [], {}, {}
    for name in args.detectors.split(","):
        if not args.skip_align:
            _align_only(args, name, celeba, work, rows, crops, reports)
        if not args.perturb_every or name in VARIANTS:
            continue
        registry.set_default_detector(name)  # what semiadv-perturb --detector does
        for pool, output in itertools.product(args.pools.split(","), args.outputs.split(",")):
            start, cpu = time.perf_counter(), _cpu_seconds()
            report = perturb.perturb_folder(version, subset,
                                            work / f"perturbed_{name}_{pool}_{output}",
                                            prototype="opposite", batch_size=32,
                                            workers=args.workers, pool=pool, output=output)
            seconds = time.perf_counter() - start
            own, workers = (after - before for after, before in zip(_cpu_seconds(), cpu))
            total = len(report["files"])
            perturbed = report["counts"].get("perturbed", 0)
            statuses = [entry.get("align_status") for entry in report["files"].values()]
            rows.append({"detector": name,
                         "path": f"semiadv-perturb --pool={pool} --output={output}",
                         "photos": total, "cropped": perturbed / total,
                         "eye_aligned": statuses.count("aligned") / total,
                         "seconds": seconds, "photos_per_s": total / seconds,
                         "cpu_ms_per_photo": 1e3 * (own + workers) / total,
                         "workers_cpu_ms_per_photo": 1e3 * workers / total,
                         "load_average": load_average()})
            print(f"perturb {name} {pool} {output}: {rows[-1]}", flush=True)
    registry.set_default_detector(None)

    # A comparison: with one detector there is nothing to compare the crops with.
    identity = _identity_rows(celeba, crops, reports) if len(crops) > 1 else []
    print(table(rows, ["detector", "path", "photos", "cropped", "eye_aligned", "by_landmarks",
                       "seconds", "photos_per_s", "cpu_ms_per_photo", "workers_cpu_ms_per_photo",
                       "load_average"]))
    print(table(identity, ["detector", "subset", "photos", "identities", "genuine_pairs",
                           "impostor_pairs", "tmr_at_fmr_1pct", "auc"]))
    path = write_results(args.name, {"machine": info, "args": vars(args), "rows": rows,
                                   "identity": identity})
    print(f"wrote {path}")
    scratch.cleanup()


if __name__ == "__main__":
    main()
