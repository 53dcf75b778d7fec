"""A photo's metadata blocks (EXIF, XMP, comments, text chunks, ICC profile), copied from
one file into another.

`semiadv-perturb` writes photos without metadata by default (OpenCV's encoders write none):
EXIF holds GPS positions and camera serial numbers, and its thumbnail is the photo before
the edit. Only the ICC colour profile is copied by default (`extract(data)`): the pixels are
written as they were stored, in its colour space, and a wide-gamut photo (Display P3, Adobe
RGB) read as sRGB would lose its colours. `--keep_metadata` copies every block
(`extract(data, everything=True)`), raw, except the EXIF, which is cleaned first
(`clean_exif`): a JPEG's orientation is set to "upright" (its pixels were turned the way the
orientation said when decoded; PNG pixels are written as stored and keep theirs) and the
thumbnail is removed. An EXIF block that cannot be parsed is dropped rather than copied with
its thumbnail. JPEG APP2 segments other than the ICC profile (the Multi-Picture Format's
index of images appended to the file, FlashPix) are never copied: what they point at is not.

JPEG and PNG only: other formats keep no metadata. No TensorFlow, no decoding.
"""

from __future__ import annotations

import struct
import zlib

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_HEADER = b"Exif\x00\x00"
_ICC_HEADER = b"ICC_PROFILE\x00"
# JPEG segments copied with everything: APP1 (EXIF, XMP), APP2 (the ICC colour profile only),
# APP13 (Photoshop IPTC), COM (comments). APP0 (JFIF) is the encoder's own.
_JPEG_KEPT_MARKERS = frozenset({0xE1, 0xE2, 0xED, 0xFE})
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}
# PNG chunks copied: text, EXIF and the ICC colour profile.
_PNG_KEPT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"})
_ORIENTATION_TAG = 0x0112
_THUMBNAIL_OFFSET_TAG = 0x0201
_THUMBNAIL_LENGTH_TAG = 0x0202


def extract(data: bytes, everything: bool = False, colour_profile: bool = True) -> list[bytes]:
    """The metadata blocks of a JPEG or PNG file, raw (JPEG: whole segments with marker and
    length; PNG: whole chunks with length and CRC): its ICC colour profile (unless
    `colour_profile` is False: a CMYK JPEG's profile does not fit the RGB pixels written), and
    with `everything` its EXIF (cleaned by `clean_exif`), XMP, IPTC, comments and text
    chunks. Empty for other formats or a file whose structure cannot be walked."""
    try:
        if data.startswith(b"\xff\xd8"):
            return _jpeg_blocks(data, everything, colour_profile)
        if data.startswith(_PNG_SIGNATURE):
            return _png_blocks(data, everything, colour_profile)
    except (struct.error, IndexError):
        pass
    return []


def insert(encoded: bytes, blocks: list[bytes]) -> bytes:
    """`encoded` (a JPEG or PNG written by OpenCV) with `blocks` from `extract` of a file of
    the same format: JPEG segments after the encoder's SOI and JFIF APP0, PNG chunks after
    IHDR (the ICC profile must come before the image data)."""
    if not blocks:
        return encoded
    if encoded.startswith(b"\xff\xd8"):
        position = 2
        if encoded[2:4] == b"\xff\xe0":
            position = 4 + struct.unpack(">H", encoded[4:6])[0]
        return encoded[:position] + b"".join(blocks) + encoded[position:]
    if encoded.startswith(_PNG_SIGNATURE):
        position = 8 + 12 + struct.unpack(">I", encoded[8:12])[0]  # After IHDR.
        return encoded[:position] + b"".join(blocks) + encoded[position:]
    raise ValueError("metadata can be inserted in JPEG and PNG files only")


def _jpeg_blocks(data: bytes, everything: bool, colour_profile: bool) -> list[bytes]:
    blocks, position = [], 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # A fill byte.
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker == 0xDA:  # Start of scan: no metadata after it.
            break
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        segment = data[position:position + 2 + length]
        is_icc = colour_profile and marker == 0xE2 and segment[4:16] == _ICC_HEADER
        if is_icc or (everything and marker in _JPEG_KEPT_MARKERS and marker != 0xE2):
            if marker == 0xE1 and segment[4:10] == _EXIF_HEADER:
                tiff = clean_exif(segment[10:])
                segment = None if tiff is None else (
                    b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + _EXIF_HEADER + tiff)
            if segment is not None:
                blocks.append(segment)
        position += 2 + length
    return blocks


def _png_blocks(data: bytes, everything: bool, colour_profile: bool) -> list[bytes]:
    blocks, position = [], 8
    while position + 12 <= len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        if kind == b"IEND":
            break
        chunk = data[position:position + 12 + length]
        wanted = colour_profile if kind == b"iCCP" else everything and kind in _PNG_KEPT_CHUNKS
        if wanted:
            if kind == b"eXIf":
                # PNG pixels are decoded and written as stored: their orientation stays.
                tiff = clean_exif(chunk[8:8 + length], upright=False)
                chunk = None if tiff is None else _png_chunk(b"eXIf", tiff)
            if chunk is not None:
                blocks.append(chunk)
        position += 12 + length
    return blocks


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def clean_exif(tiff: bytes, upright: bool = True) -> bytes | None:
    """An EXIF block (TIFF structure, after JPEG's "Exif\\0\\0") with its orientation set to
    1 (upright; unless `upright` is False) and its thumbnail (IFD1 and the image it points
    to) zeroed and unlinked; None when it cannot be parsed."""
    try:
        return _clean_exif(bytearray(tiff), upright)
    except (struct.error, IndexError, ValueError):
        return None


def _clean_exif(tiff: bytearray, upright: bool) -> bytes:
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        raise ValueError("not a TIFF header")
    ifd0 = struct.unpack(order + "I", tiff[4:8])[0]
    entries = _ifd_entries(tiff, order, ifd0)
    for tag, entry in entries.items():
        if tag == _ORIENTATION_TAG and upright:
            struct.pack_into(order + "H", tiff, entry + 8, 1)
    next_pointer = ifd0 + 2 + 12 * len(entries)
    ifd1 = struct.unpack(order + "I", tiff[next_pointer:next_pointer + 4])[0]
    if ifd1:
        thumbnail = _ifd_entries(tiff, order, ifd1)
        if _THUMBNAIL_OFFSET_TAG in thumbnail and _THUMBNAIL_LENGTH_TAG in thumbnail:
            start = _long_value(tiff, order, thumbnail[_THUMBNAIL_OFFSET_TAG])
            length = _long_value(tiff, order, thumbnail[_THUMBNAIL_LENGTH_TAG])
            tiff[start:start + length] = bytes(len(tiff[start:start + length]))
        end = ifd1 + 2 + 12 * len(thumbnail) + 4
        tiff[ifd1:end] = bytes(len(tiff[ifd1:end]))
        struct.pack_into(order + "I", tiff, next_pointer, 0)
    return bytes(tiff)


def _ifd_entries(tiff, order, offset) -> dict[int, int]:
    """{tag: offset of its 12-byte entry} of the IFD at `offset`."""
    if offset + 2 > len(tiff):
        raise ValueError("IFD outside the block")
    (count,) = struct.unpack(order + "H", tiff[offset:offset + 2])
    if offset + 2 + 12 * count + 4 > len(tiff):
        raise ValueError("IFD runs past the block")
    return {struct.unpack(order + "H", tiff[entry:entry + 2])[0]: entry
            for entry in range(offset + 2, offset + 2 + 12 * count, 12)}


def _long_value(tiff, order, entry) -> int:
    """An entry's value as SHORT (type 3) or LONG (type 4)."""
    kind = struct.unpack(order + "H", tiff[entry + 2:entry + 4])[0]
    if kind == 3:
        return struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
    return struct.unpack(order + "I", tiff[entry + 8:entry + 12])[0]
