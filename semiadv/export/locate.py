"""Finding an export's SavedModel and checking the signature a job will call.

An export is given as a version dir (`exports/<name>/<version>/`, holding `saved_model.pb`) or
as its model dir (`exports/<name>/`, whose highest integer version holding a `saved_model.pb` is
used), on local disk or at a URL (gs://...). Every job that takes `--export` finds it here.

No TensorFlow at import: semiadv-beam-perturb's driver finds the export and reads its image shape
without it (importing TensorFlow would add seconds to every run; BENCHMARKS.md §8c). URLs are
read through a `Filesystem`: TensorFlow's `tf.io.gfile` by default, imported on first use; the
Beam driver passes one over Beam's own filesystems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from semiadv.errors import UserValueError
from semiadv.export import choice_names

from semiadv.export import savedmodel_pb
from semiadv.prototypes.kinds import KINDS

SAVED_MODEL_FILENAME = "saved_model.pb"


class Filesystem(Protocol):
    """What finding an export at a URL needs of a filesystem."""

    def exists(self, url: str) -> bool:
        """Whether a file exists at `url`."""

    def saved_model_versions(self, model_url: str) -> list[int]:
        """The integer versions under `model_url` that hold a saved_model.pb."""

    def read_bytes(self, url: str) -> bytes:
        """The content of the file at `url`."""


class TensorFlowFilesystem:
    """URLs read through `tf.io.gfile` (gs:// and any scheme TensorFlow registers).

    TensorFlow is imported by the first call, so a module that only locates local exports
    never loads it.
    """

    def exists(self, url: str) -> bool:
        import tensorflow as tf

        return tf.io.gfile.exists(url)

    def saved_model_versions(self, model_url: str) -> list[int]:
        import tensorflow as tf

        children = tf.io.gfile.listdir(model_url) if tf.io.gfile.isdir(model_url) else []
        versions = [int(child.strip("/")) for child in children if child.strip("/").isdigit()]
        return [version for version in versions
                if tf.io.gfile.exists(f"{model_url}/{version}/{SAVED_MODEL_FILENAME}")]

    def read_bytes(self, url: str) -> bytes:
        import tensorflow as tf

        with tf.io.gfile.GFile(url, "rb") as handle:
            return handle.read()


def is_url(path) -> bool:
    """Whether `path` is a URL (scheme://...) rather than a local path."""
    return "://" in str(path)


def existing_versions(model_dir) -> list[int]:
    """The integer versions present in a local model dir (`export_base/<name>/`), sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(child.name) for child in model_dir.iterdir()
                  if child.is_dir() and child.name.isdigit())


def no_saved_model_error(where) -> FileNotFoundError:
    """The error for an export path that holds no SavedModel, naming the path."""
    return FileNotFoundError(f"no SavedModel ({SAVED_MODEL_FILENAME}) in {str(where)!r} or in its "
                             "integer version sub-folders")


def resolve_export(export_path, filesystem: Filesystem | None = None) -> Path | str:
    """The SavedModel dir of `export_path`: a version dir, or a model dir (highest version).

    Args:
        export_path: A local path or a URL.
        filesystem: How URLs are read (default: `TensorFlowFilesystem`); local paths are
            always read directly.

    Returns:
        A Path for a local path, a str (without a trailing "/") for a URL.

    Raises:
        FileNotFoundError: naming the path when it holds no SavedModel.
    """
    if is_url(export_path):
        filesystem = filesystem or TensorFlowFilesystem()
        url = str(export_path).rstrip("/")
        if filesystem.exists(f"{url}/{SAVED_MODEL_FILENAME}"):
            return url
        versions = filesystem.saved_model_versions(url)
        if not versions:
            raise no_saved_model_error(url)
        return f"{url}/{max(versions)}"
    path = Path(export_path)
    if (path / SAVED_MODEL_FILENAME).is_file():
        return path
    for version in reversed(existing_versions(path)):
        if (path / str(version) / SAVED_MODEL_FILENAME).is_file():
            return path / str(version)
    raise no_saved_model_error(path)


def read_signature_shapes(version_dir, filesystem: Filesystem | None = None) -> dict[str, dict]:
    """{signature name: {input name: shape}} from a version dir's saved_model.pb.

    Reads the file alone, without TensorFlow (`savedmodel_pb`); shapes are lists of sizes
    with None where unknown.

    Raises:
        savedmodel_pb.ParseError: when saved_model.pb is not a SavedModel message.
        OSError: when it cannot be read.
    """
    if is_url(version_dir):
        filesystem = filesystem or TensorFlowFilesystem()
        data = filesystem.read_bytes(f"{str(version_dir).rstrip('/')}/{SAVED_MODEL_FILENAME}")
    else:
        data = (Path(version_dir) / SAVED_MODEL_FILENAME).read_bytes()
    return savedmodel_pb.signature_input_shapes(data)


def _check_prototype(prototype: str) -> None:
    """Raises ValueError unless `prototype` names one of the perturbation signatures: a
    prototype (`same`, `neutral`, `opposite`) or a choice export's `hide_*`
    (`choice_names`)."""
    if prototype not in KINDS and not choice_names.is_hide_signature(prototype):
        raise ValueError(f"prototype must be one of {KINDS} or a hide_* signature, got "
                         f"{prototype!r}")


def image_shape(signature_shapes: dict[str, dict], export, prototype: str) -> tuple:
    """The (H, W, C) a prototype's signature takes, checked.

    Args:
        signature_shapes: {signature name: {input name: shape}}, from `read_signature_shapes`
            or from a loaded SavedModel.
        export: The export, named in error messages.
        prototype: "same", "neutral" or "opposite".

    Raises:
        ValueError: for an unknown prototype, an export without its signature, or an image
            input that is not [None, H, W, C].
    """
    _check_prototype(prototype)
    if prototype not in signature_shapes:
        names = sorted(name for name in signature_shapes if not name.startswith("__"))
        if choice_names.is_hide_signature(prototype):
            raise UserValueError(
                f"export {export} has no signature {prototype!r}: it was not trained to hide "
                f"those attributes (train with --hide_attributes; it has {names})")
        raise ValueError(f"export {export} has no signature {prototype!r} (it has {names})")
    shape = signature_shapes[prototype].get("image")
    if shape is None or len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"export {export}: signature {prototype!r} has image shape {shape}, "
                         "expected [None, H, W, C]")
    return tuple(int(size) for size in shape[1:])


def read_image_shape(export, prototype: str, filesystem: Filesystem | None = None) -> tuple:
    """The (H, W, C) of a signature's `image` input, read from saved_model.pb alone.

    `load_signature` restores every function of the export and needs TensorFlow; a driver
    that needs only this shape (the workers load their own copy) reads it here instead.

    Raises:
        FileNotFoundError: when `export` holds no SavedModel.
        ValueError: for an unknown prototype, an export without that signature or with an
            image input that is not [None, H, W, C], or an unreadable saved_model.pb.
    """
    _check_prototype(prototype)
    version_dir = resolve_export(export, filesystem)
    try:
        shapes = read_signature_shapes(version_dir, filesystem)
    except savedmodel_pb.ParseError as error:
        raise ValueError(f"export {export}: cannot parse "
                         f"{str(version_dir).rstrip('/')}/{SAVED_MODEL_FILENAME}: {error}") \
            from None
    return image_shape(shapes, export, prototype)


def load_signature(export_path, prototype: str):
    """Loads one `same` / `neutral` / `opposite` signature with TensorFlow.

    The image shape is read from the signature's `image` input, so the export alone says
    what size the faces must be.

    Returns:
        (loaded, fn, (H, W, C)): keep `loaded` alive while calling `fn`, which reads its
        variables.

    Raises:
        FileNotFoundError: when `export_path` holds no SavedModel.
        ValueError: as `image_shape`.
    """
    import tensorflow as tf

    _check_prototype(prototype)
    loaded = tf.saved_model.load(str(resolve_export(export_path)))
    shapes = {name: {key: spec.shape.as_list() if spec.shape.rank is not None else None
                     for key, spec in signature.structured_input_signature[1].items()}
              for name, signature in loaded.signatures.items()}
    shape = image_shape(shapes, export_path, prototype)
    return loaded, loaded.signatures[prototype], shape
