"""Synthetic photos with faces at known places, a detector that finds them, and metadata
blocks with private content, for the tests of semiadv-perturb's photo output."""

import struct

import numpy as np

from semiadv.data import synthetic

# (x, y, width, height) of the faces of `group_photo`, largest first.
FACE_BOXES = [(30, 40, 80, 80), (150, 60, 50, 50)]
PHOTO_SHAPE = (160, 240)
# What the metadata of `exif_block` and `jpeg_with_metadata` hold, to look for in outputs.
SERIAL = b"SecretCam SN-0042"
THUMBNAIL = b"\xff\xd8THUMBNAIL-OF-THE-UNEDITED-FACE\xff\xd9"
COMMENT = b"Alice and Bob at home"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description City="Lyon"/></x:xmpmeta>'
# Not a real profile: the bytes are only copied, never parsed.
ICC = b"ICC_PROFILE\x00\x01\x01" + b"a colour profile, kept for the colours"
MPF = b"MPF\x00" + b"index of the images appended after the photo"


class FixedFaces:
    """A FaceDetector finding `boxes` (with eyes where EYES_IN_FACE_BOX puts them) in views
    of `shape` (the upright view of a photo under 640 px), none elsewhere; `wants_rgb` so
    gray views are not made."""

    wants_rgb = True

    def __init__(self, boxes=FACE_BOXES, shape=PHOTO_SHAPE):
        self.boxes, self.shape = list(boxes), tuple(shape)

    def detect_faces(self, view):
        return list(self.boxes) if view.shape[:2] == self.shape else []

    def detect_eyes(self, view, box):
        x, y, width, height = box
        return (x + 0.3 * width, y + 0.38 * height), (x + 0.69 * width, y + 0.38 * height)


def group_photo(shape=PHOTO_SHAPE, boxes=FACE_BOXES, seed=0):
    """uint8 RGB noise with a synthetic face resized into each box."""
    import cv2

    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    faces = synthetic.make_faces(1, 1, 64, 3)["image"]
    for (x, y, width, height), face in zip(boxes, faces):
        face = np.clip(np.asarray(face) * 255, 0, 255).astype(np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, shape[1]), min(y + height, shape[0])
        resized = cv2.resize(face, (width, height))
        photo[y0:y1, x0:x1] = resized[y0 - y:y1 - y, x0 - x:x1 - x]
    return photo


def outside_boxes(shape, boxes, margin):
    """bool [H, W]: True outside every box grown by `margin` px on each side."""
    outside = np.ones(shape[:2], bool)
    for x, y, width, height in boxes:
        rows = slice(max(y - margin, 0), y + height + margin)
        outside[rows, max(x - margin, 0):x + width + margin] = False
    return outside


def exif_block(orientation=6):
    """An EXIF TIFF block (little-endian): IFD0 with the camera's serial as Make, the
    orientation and a GPS IFD (latitude N); IFD1 pointing at a thumbnail."""
    make = SERIAL + b"\x00"
    ifd0, gps, ifd1 = 8, 50, 68
    strings = ifd1 + 30
    thumbnail = strings + len(make)
    out = bytearray(b"II" + struct.pack("<HI", 42, ifd0))
    out += struct.pack("<H", 3)
    out += struct.pack("<HHII", 0x010F, 2, len(make), strings)
    out += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    out += struct.pack("<HHII", 0x8825, 4, 1, gps)
    out += struct.pack("<I", ifd1)
    out += struct.pack("<H", 1) + struct.pack("<HHI", 0x0001, 2, 2) + b"N\x00\x00\x00"
    out += struct.pack("<I", 0)
    out += struct.pack("<H", 2)
    out += struct.pack("<HHII", 0x0201, 4, 1, thumbnail)
    out += struct.pack("<HHII", 0x0202, 4, 1, len(THUMBNAIL))
    out += struct.pack("<I", 0)
    assert len(out) == strings
    return bytes(out + make + THUMBNAIL)


def _segment(marker, body):
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg_with_metadata(jpeg, orientation=6):
    """A JPEG file's bytes with an EXIF APP1 (`exif_block`), an XMP APP1, an ICC profile and
    a Multi-Picture Format index (APP2) and a comment inserted right after its
    start-of-image marker."""
    blocks = (_segment(0xE1, b"Exif\x00\x00" + exif_block(orientation))
              + _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP)
              + _segment(0xE2, ICC) + _segment(0xE2, MPF)
              + _segment(0xFE, COMMENT))
    return jpeg[:2] + blocks + jpeg[2:]


def jpeg_with_icc(jpeg):
    """A JPEG file's bytes with an ICC profile APP2 segment after its start-of-image marker."""
    return jpeg[:2] + _segment(0xE2, ICC) + jpeg[2:]


def png_with_text(png):
    """A PNG file's bytes with a tEXt chunk holding COMMENT after its IHDR."""
    import zlib

    body = b"Comment\x00" + COMMENT
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(
        ">I", zlib.crc32(b"tEXt" + body))
    end_of_ihdr = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]
