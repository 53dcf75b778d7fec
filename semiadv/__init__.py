"""semiadv: semi-adversarial networks that hide gender in face images, in TensorFlow/Keras.

The public API, one name per thing a user does (the binaries in `semiadv.apps` are built on
these):

- Configure: `DataConfig`, `NetworkConfig`, `StageConfig`, `TrainConfig`, `EvaluationConfig`.
- Data: `parse_spec` (a `--dataset` spec), `make_dataset` (a `tf.data.Dataset` of a split),
  `make_faces` (the embedded synthetic faces).
- Alignment: `align_face` (the largest face of a photo), `align_faces` (every face),
  `align_folder` (a folder, with a report), `make_detector`.
- Models: `build_autoencoder`, `build_gender_classifier`, `build_matcher`,
  `build_dlib_matcher`.
- Prototypes: `Prototypes`, `compute_prototypes`, `save_prototypes`, `load_prototypes`.
- Train: `train_and_export` (the main job: every unfinished stage of a work dir, then the
  export).
- Export: `export_san`, `resolve_export` (an export's version dir), `load_signature`.
- Perturb: `perturb_folder`, `edit_photo` (one photo's faces edited through any perturbing
  callable, e.g. a TF Serving client).
- Evaluate: `evaluate`.
- Errors: `UserError`, `UserValueError`, `UserFileNotFoundError`.

Names resolve on first use: `import semiadv` itself imports no TensorFlow, so the parts that do
not need it (the Beam driver, the per-photo workers) stay light. `import semiadv.models`
registers the package's Keras layers for `keras.models.load_model`.
"""

import importlib

# Public name -> (module, attribute).
_PUBLIC = {
    "DataConfig": ("semiadv.config", "DataConfig"),
    "NetworkConfig": ("semiadv.config", "NetworkConfig"),
    "StageConfig": ("semiadv.config", "StageConfig"),
    "TrainConfig": ("semiadv.config", "TrainConfig"),
    "EvaluationConfig": ("semiadv.evaluation.config", "EvaluationConfig"),
    "parse_spec": ("semiadv.data.specs", "parse_spec"),
    "make_dataset": ("semiadv.data.input_pipeline", "make_dataset"),
    "make_faces": ("semiadv.data.synthetic", "make_faces"),
    "align_face": ("semiadv.align.face", "align_face"),
    "align_faces": ("semiadv.align.face", "align_faces"),
    "align_folder": ("semiadv.align.folder", "align_folder"),
    "make_detector": ("semiadv.align.registry", "make_detector"),
    "build_autoencoder": ("semiadv.models.autoencoders", "build_autoencoder"),
    "build_gender_classifier": ("semiadv.models.gender_classifiers", "build_gender_classifier"),
    "build_matcher": ("semiadv.models.matchers", "build_matcher"),
    "build_dlib_matcher": ("semiadv.models.dlib_resnet", "build_dlib_matcher"),
    "Prototypes": ("semiadv.prototypes.average", "Prototypes"),
    "compute_prototypes": ("semiadv.prototypes.average", "compute_prototypes"),
    "save_prototypes": ("semiadv.prototypes.storage", "save_prototypes"),
    "load_prototypes": ("semiadv.prototypes.storage", "load_prototypes"),
    "train_and_export": ("semiadv.train.main_job", "run"),
    "export_san": ("semiadv.export.writer", "export_san"),
    "resolve_export": ("semiadv.export.locate", "resolve_export"),
    "load_signature": ("semiadv.export.locate", "load_signature"),
    "perturb_folder": ("semiadv.perturb.folder", "perturb_folder"),
    "edit_photo": ("semiadv.perturb.photo", "edit_photo"),
    "evaluate": ("semiadv.evaluation.evaluate", "evaluate"),
    "UserError": ("semiadv.errors", "UserError"),
    "UserValueError": ("semiadv.errors", "UserValueError"),
    "UserFileNotFoundError": ("semiadv.errors", "UserFileNotFoundError"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'semiadv' has no attribute {name!r}")
    module_name, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value  # Later look-ups skip this function.
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
