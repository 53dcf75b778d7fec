"""Names in the Beam pipeline: local paths or URLs, always with "/" separators."""

from __future__ import annotations

import os

from semiadv.export.locate import is_url

_GLOB_CHARACTERS = "*?["


def normalized(path):
    """Absolute local path, or URL without a trailing "/"."""
    if is_url(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{rest.rstrip('/')}" if rest.strip("/") else path
    return os.path.abspath(path)


def is_within(path, folder):
    """Whether `path` is `folder` or under it (both normalized)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def normalize_pattern(pattern):
    """The pattern to match and its folder (the part before the first wildcard).

    A local folder or a URL ending in "/" means every file under it ("folder/**").

    Returns:
        (pattern, input_dir), both absolute for local paths.
    """
    if not any(char in pattern for char in _GLOB_CHARACTERS):
        if pattern.endswith("/") or (not is_url(pattern) and os.path.isdir(pattern)):
            pattern = pattern.rstrip("/") + "/**"
    if not is_url(pattern):
        pattern = os.path.abspath(pattern) + ("/" if pattern.endswith("/") else "")
    first_glob = min((pattern.index(char) for char in _GLOB_CHARACTERS if char in pattern),
                     default=len(pattern))
    return pattern, normalized(pattern[:first_glob].rsplit("/", 1)[0] or "/")


def relative_name(path, input_dir):
    """`path` relative to `input_dir`, with "/" separators."""
    return path[len(input_dir.rstrip("/")) + 1:]
