"""Does the edit survive a bigger view? (issue #23 item 2; `--whole_photos`)

`semiadv-perturb --output=photo` carries the SAN's change on the aligned crop back onto the
whole photo (`semiadv.perturb.photo.edit_photo`). Someone who then looks at the photo is not
bound to the SAN's crop: they detect the face again, and may crop it larger. Here, on whole
photos (the files of a dataset's test split: UTKFace's 200x200 photos, CelebA's in-the-wild
identity photos), every photo is edited through the export's `opposite` signature, the largest
face is re-detected by the package's aligner in the original and in the output photo and
cropped at the data's size (64 px) and at twice it (128 px), and:

- each foreign gender classifier's error on the 128 px re-crops of the outputs is compared with
  its error on the 64 px ones (target: within 5 points);
- each matcher's TMR at FMR 1% on the 64 px re-crops of the outputs (probes) against the
  originals' crops (gallery: another photo of the person, or the same photo without
  identities) is compared with the originals' (target: >= 95% of it kept);
- the SSIM of the whole output photo against the input (target: >= 0.97).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
from absl import logging

from semiadv.config import DataConfig
from semiadv.data import records as records_lib
from semiadv.data import folder_source, specs
from semiadv.evaluation import evaluators, metrics, sampling
from semiadv.evaluation.gender_section import gender_section

GENDER_SHIFT = 0.05  # 128 px re-crops' error within 5 points of the 64 px ones'.
KEPT_MATCHES = 0.95  # Share of the originals' TMR@FMR1% kept on the output photos.
PHOTO_SSIM = 0.97


@dataclasses.dataclass(frozen=True)
class WholePhotoConfig:
    """Whether and on how many photos.

    Attributes:
      enabled: run the whole-photo evaluation (each photo is decoded, detected three times and
        edited: ~0.4 s a UTKFace photo on 2 busy cores, so off by default).
      max_photos: photos of each set's test split, spread over it (by person where it has
        identities).
      impostors_per_probe: impostor pairs sampled per probe.
    """

    enabled: bool = False
    max_photos: int = 300
    impostors_per_probe: int = 50

    def __post_init__(self):
        if self.max_photos < 2 or self.impostors_per_probe < 1:
            raise ValueError("whole photos: max_photos must be at least 2 and "
                             "impostors_per_probe positive")


def read_photos(data_config: DataConfig, split: str, count: int):
    """(paths, labels) of about `count` photo files of `split`, spread over it; ([], {}) for a
    set that is not made of files (synthetic, TFDS).

    A `folder:` set the package aligns (`aligned=0`) is read from its aligned copy; the whole
    photos are the originals of the same relative names (`semiadv.align.folder` keeps them).
    """
    spec = specs.parse_spec(data_config.dataset)
    if spec.kind not in ("utkface", "folder"):
        return [], {}
    records = records_lib.load_records(data_config, split)
    if records.paths is None:
        return [], {}
    labels = records.labels()
    chosen = sampling.identity_spread_indices(labels["identity"], count)
    paths = [Path(path) for path in np.asarray(records.paths)[chosen]]
    if spec.kind == "folder" and not spec.aligned:
        aligned_root = folder_source.aligned_copy(spec.path, data_config)  # Already aligned.
        paths = [spec.path / path.relative_to(aligned_root) for path in paths]
    return [str(path) for path in paths], {name: values[chosen] for name, values in labels.items()}


def _crop(rgb: np.ndarray, size: int, detector) -> np.ndarray | None:
    from semiadv.align import face as face_lib  # Detectors load only when aligning.

    result = face_lib.align_face(rgb, size, detector)
    return None if result.crop is None else result.crop.astype(np.float32) / 255.0


def whole_photo_section(photos, labels: dict, perturb: Callable[[np.ndarray], np.ndarray],
                        image_size: int, channels: int, classifiers, matchers, batch_size: int,
                        impostors_per_probe: int = 50, seed: int = 0, detector=None) -> dict:
    """The whole-photo table of one set.

    Args:
      photos: uint8 [H, W, 3] RGB photos (any sizes), or an iterable of them.
      labels: their "male" and "identity" (-1 unknown).
      perturb: the export on aligned crops: float32 [N, S, S, C] -> the OP outputs.
      image_size, channels: the export's input (S, C); re-crops are S and 2S px.
      classifiers: (name, gender classifier) pairs; the foreign ones are read.
      matchers: (name, matcher) pairs.
      detector: a `semiadv.align` FaceDetector (None: the package's default).

    Returns:
      {"photos", "faces_found", "faces_found_after", "sizes", "gender", "matching",
       "ssim", "targets"}.
    """
    from semiadv.evaluation import matching  # It imports the config, which imports this.
    from semiadv.perturb import photo as photo_lib

    large = 2 * image_size
    crops = {"original": [], "opposite": [], f"original_{large}": [], f"opposite_{large}": []}
    kept, ssim, found, count = [], [], 0, 0
    for index, rgb in enumerate(photos):
        count += 1
        original = _crop(rgb, image_size, detector)
        if original is None:
            continue
        found += 1
        edited, _ = photo_lib.edit_photo(rgb, perturb, image_size, channels, detector)
        views = (_crop(edited, image_size, detector), _crop(rgb, large, detector),
                 _crop(edited, large, detector))
        if any(view is None for view in views):
            continue  # The face was lost in the output photo: counted below.
        for key, view in zip(crops, (original, *views)):
            crops[key].append(view)
        kept.append(index)
        quality = metrics.mean_quality(rgb[None].astype(np.float32) / 255.0,
                                       edited[None].astype(np.float32) / 255.0)
        ssim.append(quality["ssim"])
    logging.info("whole photos: %d photos, a face in %d, found again in %d outputs", count,
                 found, len(kept))
    section = {"photos": count, "faces_found": found, "faces_found_after": len(kept),
               "sizes": [image_size, large], "gender": {}, "matching": {}, "matcher_relations": {},
               "ssim": float(np.mean(ssim)) if ssim else float("nan"), "targets": {}}
    if len(kept) < 2:
        section["skipped"] = (f"whole photos: a face was found in {found} of {count} photos and "
                              f"again in {len(kept)} outputs: too few to score")
        return section
    crops = {key: np.stack(values) for key, values in crops.items()}
    male = np.asarray(labels["male"])[kept]
    foreign = [(name, classifier) for name, classifier in classifiers
               if evaluators.relation(classifier) == "foreign"]
    if metrics.known_gender(male).any() and foreign:
        gender, _ = gender_section(foreign, crops, male, batch_size)
        for name, entry in gender.items():
            errors = {key: values["error_rate"] for key, values in entry["conditions"].items()}
            section["gender"][name] = errors
            shift = abs(errors[f"opposite_{large}"] - errors["opposite"])
            section["targets"][f"{name}: OP error at {large} px vs {image_size} px"] = {
                "target": f"within {GENDER_SHIFT:.0%}", "met": bool(shift <= GENDER_SHIFT),
                "by": float(shift - GENDER_SHIFT)}
    identity = np.asarray(labels["identity"])[kept]
    paired = sampling.has_identity_pairs(identity)
    genuine, impostor = metrics.make_pairs(identity if paired else None, len(kept),
                                           impostors_per_probe, seed)
    if matchers and len(genuine) and len(impostor):
        pairs = matching.MatchingSet(
            "whole photos", {"original": crops["original"], "opposite": crops["opposite"]},
            genuine, impostor, "identity" if paired else "same_photo", "")
        section["matching"]["protocol"] = pairs.protocol
        fmr = str(matching.FMRS[0])
        for name, matcher in matchers:
            entry, _ = matching.matcher_conditions(matcher, pairs, pairs.images, batch_size)
            tmr = {key: values["tmr_at_fmr"][fmr] for key, values in entry.items()}
            section["matching"][name] = tmr
            section["matcher_relations"][name] = evaluators.relation(matcher)
            share = tmr["opposite"] / tmr["original"] if tmr["original"] > 0 else float("nan")
            section["targets"][f"{name}: TMR@FMR1% kept"] = {
                "target": f">= {KEPT_MATCHES:.0%} of the originals'", "value": share,
                "met": bool(share >= KEPT_MATCHES), "by": float(KEPT_MATCHES - share)}
    section["targets"]["SSIM of the whole photo"] = {
        "target": f">= {PHOTO_SSIM}", "met": bool(section["ssim"] >= PHOTO_SSIM),
        "by": float(PHOTO_SSIM - section["ssim"])}
    return section


def read_photo_files(paths):
    """The photos of `paths`, decoded one at a time (uint8 RGB)."""
    from semiadv.utils import imageio

    for path in paths:
        yield imageio.read_image(path)
