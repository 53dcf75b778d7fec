"""Signature input shapes from a SavedModel's saved_model.pb, without TensorFlow.

semiadv-beam-perturb's driver only builds and launches the pipeline; it needs the export's
image shape, nothing else of TensorFlow, and importing TensorFlow would add seconds of start-up
and teardown to every run (BENCHMARKS.md §8c). The message classes live in
TensorFlow's package, so this reads the few fields it needs straight from the protobuf wire
format, which is stable by design. Field numbers, from tensorflow/core/protobuf:

  SavedModel      2: repeated MetaGraphDef meta_graphs
  MetaGraphDef    1: MetaInfoDef meta_info_def   5: map<string, SignatureDef> signature_def
  MetaInfoDef     4: repeated string tags
  SignatureDef    1: map<string, TensorInfo> inputs
  TensorInfo      3: TensorShapeProto tensor_shape
  TensorShapeProto  2: repeated Dim dim   3: bool unknown_rank
  Dim             1: int64 size (-1 for unknown)
  map entry       1: key   2: value
"""

from __future__ import annotations

from typing import Iterator, Optional

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class ParseError(ValueError):
    """saved_model.pb is not a SavedModel message (truncated or not protobuf)."""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data):
            raise ParseError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ParseError("varint longer than 10 bytes")


def _fields(data: bytes) -> Iterator[tuple[int, object]]:
    """(field number, value) of one message: ints for varints, bytes otherwise."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ParseError("field number 0")
        if wire_type == _VARINT:
            value, position = _varint(data, position)
        elif wire_type == _LENGTH:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ParseError("truncated field")
            value, position = data[position:position + length], position + length
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            if position + size > len(data):
                raise ParseError("truncated field")
            value, position = data[position:position + size], position + size
        else:  # Groups (3, 4) are not used by these messages.
            raise ParseError(f"unexpected wire type {wire_type}")
        yield number, value


def _map(data: bytes, field: int) -> dict[str, bytes]:
    """A map<string, message> field of `data`: {key: the value's bytes}."""
    entries = {}
    for number, entry in _fields(data):
        if number == field and isinstance(entry, bytes):
            parts = dict(_fields(entry))
            entries[bytes(parts.get(1, b"")).decode("utf-8")] = bytes(parts.get(2, b""))
    return entries


def _shape(tensor_info: bytes) -> Optional[list[Optional[int]]]:
    """A TensorInfo's shape: sizes with None for unknown dims; None for unknown rank."""
    shape = b"".join(value for number, value in _fields(tensor_info) if number == 3)
    dims, unknown_rank = [], False
    for number, value in _fields(shape):
        if number == 2:
            size = dict(_fields(value)).get(1, 0)
            size = size - (1 << 64) if size >= 1 << 63 else size  # int64 two's complement
            dims.append(None if size < 0 else size)
        elif number == 3:
            unknown_rank = bool(value)
    return None if unknown_rank else dims


def signature_input_shapes(saved_model: bytes, tag: str = "serve") -> dict[str, dict]:
    """{signature name: {input name: shape}} of the meta graph tagged `tag` (else the first).

    A shape is a list of sizes (None where unknown), or None for an unknown rank.

    Raises:
        ParseError: when the bytes are not a SavedModel message.
    """
    graphs = [value for number, value in _fields(saved_model) if number == 2]
    if not graphs:
        return {}
    chosen = graphs[0]
    for graph in graphs:
        info = b"".join(value for number, value in _fields(graph) if number == 1)
        tags = [bytes(value).decode("utf-8") for number, value in _fields(info) if number == 4]
        if tag in tags:
            chosen = graph
            break
    return {name: {key: _shape(info) for key, info in _map(signature, 1).items()}
            for name, signature in _map(chosen, 5).items()}
