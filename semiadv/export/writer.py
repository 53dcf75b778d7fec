"""Writes a trained SAN as a new version of a TF Serving model, atomically.

Layout under the TF Serving base path::

    export_base/models.config            # model_config_list naming every model below
    export_base/<name>/<version>/        # integer versions, never overwritten
        saved_model.pb, variables/, perturber.keras

The serving perturber (`semiadv.export.serving_model`) is saved twice in each version dir:

- as a SavedModel with the signatures of `semiadv.export.signatures`, for TF Serving and
  `tf.saved_model.load`;
- as `perturber.keras`, for `keras.models.load_model(path)` (safe mode) in any Python with
  Keras 3, without semiadv installed. TF Serving only reads `saved_model.pb`, `variables/` and
  `assets*/` from a version dir, so the extra file is ignored there, and it travels (and is
  published atomically) with the SavedModel it matches.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from semiadv.export import choice_serving
from semiadv.export import choice_signatures
from semiadv.export import locate
from semiadv.export import models_config
from semiadv.export import serving_model
from semiadv.export import signatures

KERAS_FILENAME = "perturber.keras"
# TF Serving only loads version dirs whose names parse as integers; this prefix never does.
_TEMP_PREFIX = ".incomplete-"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _check_name(name):
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or name.isdigit():
        raise ValueError(f"export name must be letters, digits, '_', '.', '-' (not starting "
                         f"with '.' and not all digits), got {name!r}")


def _choose_version(model_dir, version):
    versions = locate.existing_versions(model_dir)
    if version is None:
        return (versions[-1] + 1) if versions else 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    if int(version) in versions or (Path(model_dir) / str(version)).exists():
        raise FileExistsError(f"{Path(model_dir) / str(version)} already exists: versions are "
                              f"never overwritten (existing: {versions})")
    return int(version)


def _write_version(model, temp_dir, hide_attributes=()):
    archive = (choice_signatures.build_export_archive(model, hide_attributes) if hide_attributes
               else signatures.build_export_archive(model))
    archive.write_out(str(temp_dir), verbose=False)
    model.save(temp_dir / KERAS_FILENAME)


def export_san(autoencoder, gender_classifier, prototypes, export_base, name, version=None,
               float32=True, later_links=(), hide_attributes=(), edit_strength=1.0):
    """Exports a trained SAN as `export_base/<name>/<version>/` and updates models.config.

    The version is written to a hidden temporary dir beside the versions (TF Serving ignores
    names that are not integers) and renamed into place, so a server polling the base path
    never loads a half-written model, and a failed export leaves no version behind.

    Args:
        autoencoder: The trained autoencoder (`autoencoders.build_autoencoder`).
        gender_classifier: The auxiliary gender CNN.
        prototypes: `semiadv.prototypes.average.Prototypes` of the autoencoder's image shape.
        export_base: TF Serving model base path (e.g. `exports/`).
        name: Model name: letters, digits, '_', '.', '-'.
        version: Integer >= 1, or None for one more than the highest existing version.
        float32: Compute in float32 whatever the training precision (the default; see
            `serving_model.build_serving_perturber`).
        later_links: Links 2..K of a sequential SAN (`autoencoder` is link 1): the export is
            one perturber applying them in sequence, with the same signatures.
        hide_attributes: What a choice-conditioned SAN (`autoencoder` a choice autoencoder,
            `TrainConfig.hide_attributes`) can hide: the export takes the choice as an input
            (`choice_serving`, `choice_signatures`). Empty: a gender SAN's export.
        edit_strength: scale of the change X' - X every signature serves
            (`serving_model.strengthen`); 1 serves it as trained.

    Returns:
        The version dir (absolute). It holds the SavedModel and `perturber.keras`.

    Raises:
        FileExistsError: If the version already exists.
        ValueError: For a bad name, version or mismatched shapes.
    """
    _check_name(name)
    export_base = Path(export_base).resolve()
    model_dir = export_base / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = _choose_version(model_dir, version)
    if hide_attributes:
        if later_links:
            raise ValueError("a choice-conditioned SAN has one link")
        model = choice_serving.build_choice_serving_perturber(
            autoencoder, gender_classifier, prototypes, float32=float32,
            edit_strength=edit_strength)
    else:
        model = serving_model.build_serving_perturber(
            autoencoder, gender_classifier, prototypes, float32=float32,
            later_links=later_links, edit_strength=edit_strength)

    temp_dir = model_dir / f"{_TEMP_PREFIX}{version}-{uuid.uuid4().hex}"
    final_dir = model_dir / str(version)
    try:
        temp_dir.mkdir()
        _write_version(model, temp_dir, tuple(hide_attributes))
        if final_dir.exists():  # Another export took the version meanwhile.
            raise FileExistsError(f"{final_dir} appeared during the export; not overwritten")
        os.rename(temp_dir, final_dir)
    finally:
        if temp_dir.exists():
            shutil.rmtree(temp_dir, ignore_errors=True)
    models_config.write_models_config(export_base)
    logging.info("exported %s", final_dir)
    return final_dir
