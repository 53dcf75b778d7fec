"""Reading and writing through Beam's `FileSystems`: local paths and any URL Beam reads."""

from __future__ import annotations

import json
import uuid

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from semiadv.export import locate


class BeamFilesystem:
    """A `semiadv.export.locate.Filesystem` over Beam's filesystems: the driver finds an
    export at a URL with it, without TensorFlow."""

    def exists(self, url: str) -> bool:
        return FileSystems.exists(url)

    def saved_model_versions(self, model_url: str) -> list[int]:
        try:
            matched = FileSystems.match(
                [f"{model_url}/*/{locate.SAVED_MODEL_FILENAME}"])[0].metadata_list
        except Exception:  # noqa: BLE001  Beam wraps each filesystem's own error.
            return []
        names = (metadata.path.rstrip("/").split("/")[-2] for metadata in matched)
        return [int(name) for name in names if name.isdigit()]

    def read_bytes(self, url: str) -> bytes:
        with FileSystems.open(url, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return handle.read()


def write_atomically(path, data):
    """Writes bytes under a hidden temporary name beside `path`, then renames it.

    A worker killed mid-write leaves only the hidden temporary (which inputs and reruns
    ignore), never a half-written `path`. Any Beam filesystem (`semiadv.utils.files` writes
    local files only).
    """
    folder, name = FileSystems.split(path)
    temporary = FileSystems.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) \
                as handle:
            handle.write(data)
        FileSystems.rename([temporary], [path])
    except BaseException:
        try:
            if FileSystems.exists(temporary):
                FileSystems.delete([temporary])
        except Exception:  # noqa: BLE001  The write's own error is the one to report.
            pass
        raise


def read_json(path):
    """The JSON value of the file at `path`, or None when it is missing or damaged."""
    if not FileSystems.exists(path):
        return None
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
