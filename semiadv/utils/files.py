"""Atomic file writes: readers see the old file or the new one, never half of one.

Every artefact a killed run could leave half-written (configs, stage records, prototypes,
reports, images, `.keras` files) is written through these. No TensorFlow: the Beam driver and
the per-photo workers use them too.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    """Reads the process umask (it can only be read by setting it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# Read once at import: os.umask is process-wide and not thread-safe to poke.
_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a hidden temporary path beside `path`; on success renames it over `path`.

    For writers that want a file name rather than bytes (`keras.Model.save`, `np.savez`). The
    temporary file is in the destination folder, so the rename is atomic; if the body raises,
    the temporary file is removed and any existing `path` is left as it was.

    Args:
      path: destination file; its parent folders are created.
      suffix: the temporary name's ending (`keras.Model.save` insists on ".keras").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        yield temp_path
        # mkstemp creates the file private (0600); give it the permissions a plain open()
        # would have, so other users can read the results.
        os.chmod(temp_path, 0o666 & ~_UMASK)
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Writes bytes to `path` atomically, creating parent folders.

    Args:
      path: destination file.
      data: its full new content.
    """
    with atomic_path(path) as temp_path:
        temp_path.write_bytes(data)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 text to `path` atomically, creating parent folders."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_json_atomically(path: str | os.PathLike, value: Any, **dumps_options: Any) -> None:
    """Writes `value` as indented JSON (and a final newline) to `path` atomically.

    Args:
      path: destination file.
      value: anything `json.dumps` takes.
      **dumps_options: passed to `json.dumps` (e.g. `sort_keys=True`); `indent` defaults to 2.
    """
    dumps_options.setdefault("indent", 2)
    write_text_atomically(path, json.dumps(value, **dumps_options) + "\n")
