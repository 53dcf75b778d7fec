"""Tests of semiadv.utils.metadata: EXIF, XMP, comments and PNG text copied between files."""

import struct

import numpy as np
import pytest

import _photo_faces
from semiadv.utils import imageio
from semiadv.utils import metadata

PIXELS = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)


def _exif_entries(tiff):
    """{tag: (type, count, value bytes)} of IFD0 of a little-endian TIFF, and the next IFD."""
    (offset,) = struct.unpack("<I", tiff[4:8])
    (count,) = struct.unpack("<H", tiff[offset:offset + 2])
    entries = {}
    for start in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, number = struct.unpack("<HHI", tiff[start:start + 8])
        entries[tag] = (kind, number, tiff[start + 8:start + 12])
    (next_ifd,) = struct.unpack("<I", tiff[offset + 2 + 12 * count:offset + 6 + 12 * count])
    return entries, next_ifd


def test_jpeg_blocks_are_extracted_with_the_exif_cleaned():
    source = _photo_faces.jpeg_with_metadata(imageio.encode_image("a.jpg", PIXELS))
    (icc,) = metadata.extract(source)  # By default, the colour profile alone.
    assert icc[4:] == _photo_faces.ICC
    blocks = metadata.extract(source, everything=True)
    # Not the Multi-Picture Format's index: the images it points at are not copied.
    assert [block[:2] for block in blocks] == [b"\xff\xe1", b"\xff\xe1", b"\xff\xe2", b"\xff\xfe"]
    assert not any(_photo_faces.MPF in block for block in blocks)
    # A CMYK JPEG's profile is CMYK's: not for the RGB pixels written back.
    assert metadata.extract(source, colour_profile=False) == []
    assert len(metadata.extract(source, everything=True, colour_profile=False)) == 3
    exif, xmp, _, comment = blocks
    assert _photo_faces.XMP in xmp and _photo_faces.COMMENT in comment
    tiff = exif[10:]
    entries, next_ifd = _exif_entries(tiff)
    assert entries[0x0112][2][:2] == struct.pack("<H", 1)  # Upright: the pixels are turned.
    assert 0x8825 in entries and _photo_faces.SERIAL in tiff  # Kept means kept, GPS too.
    assert next_ifd == 0 and _photo_faces.THUMBNAIL not in tiff and b"THUMBNAIL" not in exif
    assert len(tiff) == len(_photo_faces.exif_block())  # Zeroed in place, offsets still valid.


def test_blocks_inserted_into_a_fresh_jpeg_read_back():
    source = _photo_faces.jpeg_with_metadata(imageio.encode_image("a.jpg", PIXELS))
    fresh = imageio.encode_image("b.jpg", PIXELS)
    assert b"Exif" not in fresh and _photo_faces.COMMENT not in fresh  # OpenCV writes none.
    combined = metadata.insert(fresh, metadata.extract(source, everything=True))
    assert imageio.decode_image(combined, "c.jpg").shape == PIXELS.shape  # Orientation 1.
    assert metadata.extract(combined, everything=True) == metadata.extract(source, everything=True)
    PIL = pytest.importorskip("PIL.Image", reason="Pillow not installed")
    import io

    exif = PIL.open(io.BytesIO(combined)).getexif()
    assert exif[0x0112] == 1 and exif[0x010F] == _photo_faces.SERIAL.decode()


def test_png_text_chunks_are_copied_with_valid_crcs():
    source = _photo_faces.png_with_text(imageio.encode_image("a.png", PIXELS))
    assert metadata.extract(source) == []  # No colour profile; the text only when asked.
    blocks = metadata.extract(source, everything=True)
    assert len(blocks) == 1 and blocks[0][4:8] == b"tEXt"
    combined = metadata.insert(imageio.encode_image("b.png", PIXELS), blocks)
    np.testing.assert_array_equal(imageio.decode_image(combined, "c.png"), PIXELS)
    PIL = pytest.importorskip("PIL.Image", reason="Pillow not installed")
    import io

    image = PIL.open(io.BytesIO(combined))
    image.load()  # Checks every chunk's CRC.
    assert image.text == {"Comment": _photo_faces.COMMENT.decode()}


def test_png_exif_chunk_loses_its_thumbnail_but_keeps_its_orientation():
    import zlib

    png = imageio.encode_image("a.png", PIXELS)
    body = _photo_faces.exif_block()
    crc = struct.pack(">I", zlib.crc32(b"eXIf" + body))
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + crc
    source = png[:33] + chunk + png[33:]
    (block,) = metadata.extract(source, everything=True)
    assert block[4:8] == b"eXIf" and _photo_faces.THUMBNAIL not in block
    assert struct.unpack(">I", block[-4:])[0] == zlib.crc32(block[4:-4])
    # PNG pixels are written as stored (OpenCV does not turn them): the tag still applies.
    entries, _ = _exif_entries(block[8:-4])
    assert entries[0x0112][2][:2] == struct.pack("<H", 6)


def test_damaged_exif_is_dropped_not_copied():
    tiff = _photo_faces.exif_block()
    assert metadata.clean_exif(tiff[:20]) is None  # IFD0 runs past the end.
    assert metadata.clean_exif(b"XX" + tiff[2:]) is None
    jpeg = imageio.encode_image("a.jpg", PIXELS)
    broken = jpeg[:2] + b"\xff\xe1\x00\x10Exif\x00\x00II*\x00\xff\xff\x00\x00" + jpeg[2:]
    assert metadata.extract(broken, everything=True) == []


def test_other_formats_have_no_blocks():
    assert metadata.extract(imageio.encode_image("a.bmp", PIXELS)) == []
    assert metadata.insert(b"anything", []) == b"anything"
    with pytest.raises(ValueError, match="JPEG and PNG"):
        metadata.insert(imageio.encode_image("a.bmp", PIXELS), [b"x"])
