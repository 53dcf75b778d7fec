"""Checks that a command can work before it starts any: each raises a `UserError` whose one
message names the value, says what is expected and how to fix it.

The binaries call these right after turning flags into configs and before anything is
written, so a mistake costs seconds, not a half-trained work dir. They look only at names
and folders (no decoding, no TensorFlow): the loaders still report each bad file later.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from semiadv.data import specs, utkface_source
from semiadv.utils import imageio
from semiadv.export import locate
from semiadv.export import savedmodel_pb
from semiadv.errors import UserFileNotFoundError, UserValueError

UTKFACE_PATTERN = "<age>_<gender>_<race>_<date>.jpg.chip.jpg"


def dataset(spec: str, flag: str = "--dataset") -> None:
    """Checks that a dataset spec parses and that its folder holds photos it can read.

    Raises:
      UserValueError: for a malformed spec, or a folder without usable photo names.
      UserFileNotFoundError: for a folder that does not exist.
    """
    try:
        parsed = specs.parse_spec(spec)
    except ValueError as error:
        raise UserValueError(f"{flag}={spec}: {error}") from error
    if parsed.kind not in ("utkface", "folder"):
        return  # synthetic is built in; tensorflow-datasets specs download on first use.
    folder = parsed.path
    if not folder.is_dir():
        raise UserFileNotFoundError(
            f"{flag}={spec}: folder {folder} does not exist or is not a folder; give the "
            "folder of the photos")
    if parsed.kind == "utkface":
        photos = imageio.list_images(folder, recursive=False)
        named = [photo for photo in photos
                 if utkface_source.parse_utkface_name(photo.name) is not None]
        if not named:
            found = (f"its {len(photos)} image(s), e.g. {photos[0].name}, are not named so"
                     if photos else "it has no images")
            raise UserValueError(
                f"{flag}={spec}: no UTKFace photos in {folder} ({found}): utkface: reads "
                f"files named {UTKFACE_PATTERN} (gender 0 = male, 1 = female) directly in "
                "the folder; for other photos use folder:PATH with labels.csv or "
                "<identity>/ sub-folders")
        return
    if not (folder / "labels.csv").is_file() and not any(
            imageio.list_images(folder, recursive=True)):
        raise UserValueError(
            f"{flag}={spec}: no photos in {folder}: folder: reads labels.csv (file,male"
            "[,identity]) or photos in <identity>/ sub-folders")


def writable_dir(path: str | Path, flag: str) -> None:
    """Checks that `path` is, or can be created as, a folder this process can write in.

    Creates nothing.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserValueError(f"{flag}={path}: is a file, not a folder; give a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserValueError(f"{flag}={path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserValueError(f"{flag}={path}: cannot write in {existing} (permission "
                             "denied); choose a folder you can write to")


def export(path: str | Path, flag: str = "--export") -> None:
    """Checks that `path` is an export: a version dir with a saved_model.pb, or a model dir
    with integer version sub-folders holding one, that parses as a SavedModel (read without
    TensorFlow, so a corrupt file is a one-line error before the model is loaded)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserFileNotFoundError(
            f"{flag}={path}: does not exist; give an export written by semiadv-train or "
            "semiadv-export (EXPORT_DIR/NAME or EXPORT_DIR/NAME/VERSION)")
    try:
        version_dir = locate.resolve_export(path)
    except FileNotFoundError:
        raise UserFileNotFoundError(
            f"{flag}={path}: no model there (no saved_model.pb in it or in an integer version "
            "sub-folder); give an export written by semiadv-train or semiadv-export "
            "(EXPORT_DIR/NAME or EXPORT_DIR/NAME/VERSION), not a work dir") from None
    try:
        locate.read_signature_shapes(version_dir)
    except savedmodel_pb.ParseError as error:
        saved_model = version_dir / locate.SAVED_MODEL_FILENAME
        raise UserValueError(f"{flag}={path}: {saved_model} is not a SavedModel ({error}); "
                             "give an export written by semiadv-train or semiadv-export") \
            from None


def evaluator(spec: str, flag: str = "--evaluator") -> None:
    """Checks that a `module:factory` spec is well formed and its module can be found."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute or ":" in attribute:
        raise UserValueError(f"{flag}={spec}: expected module:factory, e.g. "
                             "mypkg.evaluators:make_matcher")
    if not _found(module_name):
        raise UserValueError(f"{flag}={spec}: no module {module_name!r} on the Python path; "
                             "install it or add its folder to PYTHONPATH")


def python_package(name: str, flag: str, install: str) -> None:
    """Checks that package `name`, which `flag` needs, is installed (without importing it)."""
    if not _found(name):
        raise UserValueError(f"{flag} needs the Python package {name}, which is not "
                             f"installed: {install}")


def _found(module_name: str) -> bool:
    """Whether `module_name` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):  # A parent package missing, or a malformed name.
        return False


def gender_classifier(spec: str, flag: str = "--gender_classifier") -> None:
    """Checks that a gender classifier file spec names an existing Keras or ONNX file."""
    from semiadv.evaluation import gender_file  # Imports no TensorFlow until a model loads.

    try:
        gender_file.check_file(gender_file.parse_spec(spec))
    except FileNotFoundError as error:
        raise UserFileNotFoundError(f"{flag}={spec}: {error}") from None
    except ValueError as error:
        raise UserValueError(f"{flag}={spec}: {error}") from None


def tf_config(environ=os.environ) -> None:
    """Checks that TF_CONFIG, when set, is JSON with a cluster and this worker's task."""
    text = environ.get("TF_CONFIG")
    if not text:
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserValueError(f"TF_CONFIG={text!r} is not valid JSON ({error}); expected "
                             '{"cluster": {"worker": ["host:port", ...]}, "task": '
                             '{"type": "worker", "index": 0}}') from error
    task = value.get("task") if isinstance(value, dict) else None
    cluster = value.get("cluster") if isinstance(value, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserValueError(f"TF_CONFIG={text!r} needs a \"cluster\" and a \"task\" object, "
                             'e.g. {"cluster": {"worker": ["host:port", ...]}, "task": '
                             '{"type": "worker", "index": 0}}')
    members = cluster.get(task.get("type"))
    index = task.get("index")
    if not isinstance(members, list) or not isinstance(index, int) or not (
            0 <= index < len(members)):
        raise UserValueError(f"TF_CONFIG={text!r}: task {task} is not one of the cluster's "
                             f"members {cluster}")


def folders(input_dir: str | Path, output_dir: str | Path, input_flag: str = "--input_dir",
            output_flag: str = "--output_dir") -> None:
    """Checks a batch job's input folder (exists, has photos) against its output folder.

    The output folder may lie inside the input folder (its files are then not inputs), but
    must not be the input folder nor contain it, where outputs could overwrite inputs.
    """
    source, target = Path(input_dir).expanduser(), Path(output_dir).expanduser()
    if not source.is_dir():
        raise UserFileNotFoundError(f"{input_flag}={input_dir}: does not exist or is not a "
                                    "folder; give the folder of the photos")
    source, target = source.resolve(), target.resolve()
    if source == target:
        raise UserValueError(f"{output_flag}={output_dir} is the input folder "
                             f"({input_flag}): inputs are never overwritten; give another "
                             f"folder, e.g. {output_dir.rstrip('/')}_out")
    if target in source.parents:
        raise UserValueError(f"{input_flag}={input_dir} is inside {output_flag}={output_dir}: "
                             "outputs could overwrite inputs; give an output folder outside it")
    writable_dir(target, output_flag)
    if not any(path for path in imageio.list_images(source, recursive=True,
                                                     include_broken_links=True)
               if target not in path.resolve().parents):
        raise UserValueError(f"{input_flag}={input_dir}: no photos in it (looked for "
                             f"{', '.join(imageio.IMAGE_EXTENSIONS)} files, "
                             "recursively)")
