"""The `path?key=value&...` specs of the file plug-ins (ONNX matchers, gender classifiers)."""

from __future__ import annotations

import os
import urllib.parse


def split_spec(spec: str, what: str, example: str) -> tuple[str, list[tuple[str, str]]]:
    """`path[?key=value&...]` -> (path, [(key, value), ...]), the settings in their order.

    Args:
      spec: the plug-in's spec.
      what: what the spec names, for messages (e.g. "ONNX matcher").
      example: a valid spec, shown in messages.

    Raises:
      ValueError: naming the spec for an empty path or a malformed setting list.
    """
    path, _, query = spec.partition("?")
    if not path:
        raise ValueError(f"{what} spec {spec!r}: give the model path, e.g. {example}")
    try:
        settings = urllib.parse.parse_qsl(query, keep_blank_values=True,
                                          strict_parsing=bool(query))
    except ValueError as error:
        raise ValueError(f"{what} spec {spec!r}: {error}; join settings with &, e.g. "
                         f"{example}") from error
    return path, settings


def spec_or_environment(spec: str | None, variable: str, what: str, example: str,
                        flag: str) -> str:
    """`spec`, or the environment variable's value when `spec` is None (a `make` factory).

    Raises:
      ValueError: when neither gives a model, naming the variable and the flag.
    """
    if spec is None:
        spec = os.environ.get(variable, "")
        if not spec:
            raise ValueError(f"the {what} plug-in needs a model: set ${variable}={example} or "
                             f"use --{flag}=PATH")
    return spec
