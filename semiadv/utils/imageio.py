"""Robust image reading and writing for the whole package.

Every image the package touches goes through `read_image`, which turns any
supported file into a uint8 RGB array or raises `ImageReadError` naming the
file and the reason. Files are read as bytes and decoded with
`cv2.imdecode`, so non-ASCII paths work on every platform, and the bytes are
checked first (magic number, end marker, header size) so corrupt, truncated
or gigantic files fail fast with a useful message instead of a `None` from
OpenCV or an out-of-memory kill.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from semiadv.utils import files

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Photo formats this module does not read (OpenCV's GIF, TIFF, HEIF and AVIF support depends
# on how it was built, and a GIF may hold an animation): batch jobs that must not pass a
# photo over silently list them (`list_images(..., extensions=UNREAD_PHOTO_EXTENSIONS)`).
UNREAD_PHOTO_EXTENSIONS = (".gif", ".tif", ".tiff", ".heic", ".heif", ".avif")

# Decoding is refused (or reduced, for JPEG) above this many pixels: 50 Mpx of
# RGB uint8 is 150 MB, large enough for any camera photo at full resolution.
DEFAULT_MAX_PIXELS = 50_000_000
# JPEG quality of every write unless the caller picks one.
DEFAULT_JPEG_QUALITY = 95

# libjpeg can decode at 1/2, 1/4 or 1/8 scale without materialising the full
# image, which is how a huge JPEG is still read in bounded memory.
_JPEG_REDUCED_FLAGS = (
    (2, cv2.IMREAD_REDUCED_COLOR_2),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (8, cv2.IMREAD_REDUCED_COLOR_8),
)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"  # the chunk type plus its fixed CRC
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic...);
# 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) share the range but are not frames.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and why.

    Attributes:
      path: the offending file.
      reason: a short human-readable reason, e.g. "truncated JPEG".
    """

    def __init__(self, path: PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {str(self.path)!r}: {reason}")


class ImageTooLargeError(ImageReadError):
    """An image too large to decode at its own size (`decode_unchanged`); `decode_image`
    may still read it at a reduced scale (a JPEG)."""


@dataclass(frozen=True)
class ImageHeader:
    """What the bytes say about an image before any decoding (`inspect_image`).

    Attributes:
      format: "jpeg", "png", "bmp" or "webp".
      width, height: the size in the header (None when it has none).
      components: a JPEG's colour components (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK); else None.
      animated: an animated PNG (APNG) or WebP: only its first frame is decoded.
    """

    format: str
    width: Optional[int]
    height: Optional[int]
    components: Optional[int] = None
    animated: bool = False



def check_image_file(path: PathLike) -> None:
    """Cheaply checks that a file looks like a complete, supported image.

    No pixel data is decoded: the file must exist and be readable, be
    non-empty, start with the magic bytes of a supported format, and be
    complete (a JPEG needs its end-of-image marker, a PNG its IEND chunk).

    Args:
      path: the image file.

    Raises:
      ImageReadError: naming the file and the problem.
    """
    _inspect(path, read_bytes(path))


def inspect_image(data: bytes, path: PathLike) -> ImageHeader:
    """What an image file's bytes say before decoding: format, size, JPEG components, animation.

    Raises:
      ImageReadError: as `check_image_file` does.
    """
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    return _inspect(path, data)


def read_image(path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Reads an image file as uint8 RGB.

    Conversions: grayscale is repeated to three channels; an alpha channel
    (RGBA, gray+alpha, palette with transparency) is composited on black, so
    transparent pixels come out black whatever colour they happen to store;
    16-bit images are scaled by 255/65535 with rounding (65535 -> 255, not
    truncated to the low byte); palette PNGs are expanded. JPEGs honour their
    EXIF orientation. A JPEG larger than `max_pixels` is decoded at 1/2, 1/4
    or 1/8 scale (the smallest reduction that fits), so a huge photo still
    reads in bounded memory; other formats that large are refused.

    Args:
      path: the image file (any extension; the content decides the format).
      max_pixels: largest width * height decoded at full size.

    Returns:
      A uint8 array of shape [height, width, 3] in RGB order.

    Raises:
      ImageReadError: if the file is missing, unreadable, empty, not an
        image, truncated, corrupt or too large; the message names the file.
    """
    return decode_image(read_bytes(path), path, max_pixels)


def decode_image(data: bytes, path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes an image file's bytes as uint8 RGB, exactly as `read_image` does.

    For bytes that did not come from a local path (e.g. an object in a bucket read by
    Apache Beam's filesystems).

    Args:
      data: the whole file content.
      path: the file's name (any URL), for error messages only.
      max_pixels: largest width * height decoded at full size.

    Returns:
      A uint8 array of shape [height, width, 3] in RGB order.

    Raises:
      ImageReadError: if the bytes are empty, not an image, truncated, corrupt or too
        large; the message names `path`.
    """
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    header = _inspect(path, data)
    flags = _decode_flags(path, header, max_pixels)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if decoded is None or decoded.size == 0:
        raise ImageReadError(path, f"corrupt {header.format.upper()} data (OpenCV could not decode it)")
    return _to_rgb_uint8(path, decoded)


def decode_unchanged(data: bytes, path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes an image file's bytes as OpenCV stores them, to be edited and written back.

    Unlike `decode_image`, nothing is converted: gray stays [H, W], alpha stays a fourth
    channel, 16-bit samples stay uint16 (channels in OpenCV's BGR(A) order). JPEGs are
    decoded with their EXIF orientation applied, as `decode_image` does (a gray
    JPEG stays [H, W]; a CMYK one comes back BGR). `to_rgb` turns the result into what `decode_image` returns.

    Raises:
      ImageReadError: as `decode_image`.
      ImageTooLargeError: for a JPEG above `max_pixels` that `decode_image` reads reduced
        (a reduced decode would not be the photo at its own size).
    """
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    header = _inspect(path, data)
    flags = _decode_flags(path, header, max_pixels)
    if header.format == "jpeg" and header.components == 1 and flags == cv2.IMREAD_COLOR:
        flags = cv2.IMREAD_GRAYSCALE  # Written back gray, as it came.
    if any(flags == reduced for _, reduced in _JPEG_REDUCED_FLAGS):
        raise ImageTooLargeError(path, f"image too large to edit at its own size: {header.width}x"
                                       f"{header.height}, over the limit of {max_pixels / 1e6:g} Mpx")
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if decoded is None or decoded.size == 0:
        raise ImageReadError(path, f"corrupt {header.format.upper()} data (OpenCV could not decode it)")
    if decoded.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(path, f"unsupported sample type {decoded.dtype}")
    return decoded


def to_rgb(path: PathLike, decoded: np.ndarray) -> np.ndarray:
    """A `decode_unchanged` result as `decode_image` returns it: uint8 RGB [H, W, 3]."""
    return _to_rgb_uint8(path, decoded)


def write_image(path: PathLike, image: np.ndarray) -> None:
    """Writes an RGB image atomically; the format follows the extension.

    The image is encoded in memory, written to a temporary file in the
    destination folder and moved into place with `os.replace`, so a reader
    never sees a half-written file and an existing file is never lost to a
    failed write. Parent folders are created.

    Args:
      path: destination; its extension (one of IMAGE_EXTENSIONS) picks the
        format. JPEGs are written at quality 95.
      image: [H, W, 3] RGB (or [H, W] / [H, W, 1] gray), either uint8 or
        float in [0, 1].

    Raises:
      ValueError: for an unsupported extension, shape, dtype or value range.
    """
    files.write_bytes_atomically(path, encode_image(path, image))


def encode_image(path: PathLike, image: np.ndarray, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """Encodes an RGB image the way `write_image` writes it, in memory.

    Args:
      path: the destination's name (any URL); its extension picks the format.
      image: as for `write_image`.
      jpeg_quality: 1..100, for JPEG destinations.

    Returns:
      The encoded file content (no metadata: OpenCV writes none).

    Raises:
      ValueError: for an unsupported extension, shape, dtype or value range.
    """
    path = Path(path)
    return _encode(path, _to_bgr_uint8_for_writing(path, image), jpeg_quality)


def encode_unchanged(path: PathLike, decoded: np.ndarray, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """Encodes a `decode_unchanged`-style array (gray, BGR or BGRA; uint8, or uint16 for
    PNG) in the format of `path`'s extension, with no metadata.

    Raises:
      ValueError: for an unsupported extension, or samples the format cannot hold.
    """
    path = Path(path)
    decoded = np.asarray(decoded)
    if decoded.dtype == np.uint16 and path.suffix.lower() != ".png":
        raise ValueError(f"cannot write {str(path)!r}: 16-bit samples need a .png name")
    return _encode(path, decoded, jpeg_quality)


def _encode(path: Path, pixels: np.ndarray, jpeg_quality: int) -> bytes:
    extension = path.suffix.lower()
    if extension not in IMAGE_EXTENSIONS:
        raise ValueError(f"cannot write {str(path)!r}: extension {extension!r} is not one of {IMAGE_EXTENSIONS}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if extension in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(extension, pixels, params)
    if not ok:
        raise ValueError(f"cannot write {str(path)!r}: OpenCV failed to encode {extension}")
    return encoded.tobytes()


def list_images(directory: PathLike, recursive: bool = False, include_broken_links: bool = False,
                extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Lists the image files in a folder, sorted by path.

    A file is an image if its extension (any case) is in `extensions` (IMAGE_EXTENSIONS:
    the ones `read_image` reads).
    Hidden files and folders (name starting with ".") are skipped: they are
    macOS "._x.jpg" resource forks, editor temporaries or this module's own
    in-progress atomic writes, never photos.

    Args:
      directory: the folder to scan.
      recursive: also scan sub-folders.
      include_broken_links: also list symbolic links with an image name whose
        target is missing, so a batch job can report them as unreadable
        instead of silently leaving them out.

    Returns:
      The image paths (possibly none), sorted.

    Raises:
      FileNotFoundError: if `directory` does not exist.
      NotADirectoryError: if it is not a folder.
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"image folder {str(directory)!r} does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(f"{str(directory)!r} is not a folder")
    candidates = directory.rglob("*") if recursive else directory.iterdir()
    images = [
        path
        for path in candidates
        if path.suffix.lower() in extensions
        and (path.is_file() or (include_broken_links and path.is_symlink() and not path.exists()))
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]
    return sorted(images)


# --------------------------------------------------------------------------
# Reading helpers.


def read_bytes(path: PathLike) -> bytes:
    """Reads a whole image file, turning OS errors into ImageReadError (naming the file)."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise ImageReadError(path, f"broken symbolic link (its target {os.readlink(path)!r} does not exist)")
        raise ImageReadError(path, "file does not exist")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not a file")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as error:
        raise ImageReadError(path, f"cannot open file ({error.strerror or error})") from None
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    return data


def _inspect(path: PathLike, data: bytes) -> ImageHeader:
    """Identifies the format from magic bytes and checks completeness."""
    if data.startswith(_JPEG_SOI):
        return _inspect_jpeg(path, data)
    if data.startswith(_PNG_SIGNATURE):
        return _inspect_png(path, data)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return ImageHeader("bmp", abs(width), abs(height))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        width, height = _webp_size(data)
        # VP8X's flags byte: bit 1 says the file holds an animation.
        animated = data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)
        return ImageHeader("webp", width, height, animated=animated)
    raise ImageReadError(path, f"not an image (unrecognised content, first bytes {data[:8]!r})")


def _inspect_jpeg(path: PathLike, data: bytes) -> ImageHeader:
    """Walks the JPEG marker segments up to the first scan.

    The segments before the first scan are skipped by their lengths, so an
    EXIF thumbnail (which carries its own end marker) is never mistaken for
    the end of the main image; after the scan starts, byte stuffing
    guarantees 0xFFD9 only appears as the real end-of-image marker.
    """
    position = 2
    width = height = components = None
    while True:
        if position + 4 > len(data):
            raise ImageReadError(path, "truncated JPEG (ends inside its header)")
        if data[position] != 0xFF:
            raise ImageReadError(path, f"corrupt JPEG (no marker at byte {position})")
        while position < len(data) and data[position] == 0xFF:
            position += 1  # 0xFF fill bytes may precede any marker
        if position + 3 > len(data):
            raise ImageReadError(path, "truncated JPEG (ends inside its header)")
        marker = data[position]
        position += 1
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        (length,) = struct.unpack(">H", data[position : position + 2])
        if marker in _JPEG_SOF_MARKERS and position + 7 <= len(data):
            height, width = struct.unpack(">HH", data[position + 3 : position + 7])
            components = data[position + 7] if position + 8 <= len(data) else None
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        position += length
    if data.find(_JPEG_EOI, position) < 0:
        raise ImageReadError(path, "truncated JPEG (no end-of-image marker FFD9)")
    if not width or not height:
        raise ImageReadError(path, "corrupt JPEG (no frame header with the image size)")
    return ImageHeader("jpeg", width, height, components=components)


def _inspect_png(path: PathLike, data: bytes) -> ImageHeader:
    """Reads the PNG size from IHDR and checks the IEND chunk is present."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageReadError(path, "truncated PNG (no IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    if data.rfind(_PNG_IEND) < 0:
        raise ImageReadError(path, "truncated PNG (no IEND chunk)")
    return ImageHeader("png", width, height, animated=_png_is_animated(data))


def _png_is_animated(data: bytes) -> bool:
    """Whether a PNG has an APNG animation control chunk (it must come before the image data)."""
    position = 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"acTL":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        position += 12 + length
    return False


def _webp_size(data: bytes) -> tuple[Optional[int], Optional[int]]:
    """Reads a WebP canvas size from its first chunk (None if unknown)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None, None


def _decode_flags(path: PathLike, header: ImageHeader, max_pixels: int) -> int:
    """Chooses the cv2.imdecode flags; reduces or refuses huge images."""
    # JPEG has no alpha and (in practice) 8 bits, so IMREAD_COLOR loses
    # nothing and, unlike IMREAD_UNCHANGED, applies the EXIF orientation.
    full_flag = cv2.IMREAD_COLOR if header.format == "jpeg" else cv2.IMREAD_UNCHANGED
    if header.width is None or header.height is None:
        return full_flag
    pixels = header.width * header.height
    if pixels <= max_pixels:
        return full_flag
    size = f"{header.width}x{header.height} ({pixels / 1e6:.0f} Mpx)"
    if header.format == "jpeg":
        for factor, flag in _JPEG_REDUCED_FLAGS:
            if pixels / factor**2 <= max_pixels:
                return flag
        raise ImageReadError(path, f"image too large: {size}, over the limit of {max_pixels / 1e6:g} Mpx even at 1/8 scale")
    raise ImageReadError(path, f"image too large: {size}, over the limit of {max_pixels / 1e6:g} Mpx")


def _to_rgb_uint8(path: PathLike, decoded: np.ndarray) -> np.ndarray:
    """Converts whatever cv2.imdecode returned to uint8 RGB.

    Works in integers throughout: a float copy of a large photo would take
    four times its memory.
    """
    image = _to_uint8(path, decoded)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # gray + alpha
        gray = _composite_on_black(image[:, :, :1], image[:, :, 1:])
        return cv2.cvtColor(gray[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:  # BGR + alpha
        return cv2.cvtColor(_composite_on_black(image[:, :, :3], image[:, :, 3:]), cv2.COLOR_BGR2RGB)
    raise ImageReadError(path, f"unsupported number of channels: {channels}")


def _to_uint8(path: PathLike, decoded: np.ndarray) -> np.ndarray:
    """Maps 16-bit samples onto 0..255 by their full range, rounding."""
    if decoded.dtype == np.uint8:
        return decoded
    if decoded.dtype == np.uint16:
        # round(x * 255 / 65535): 65535 -> 255, 32768 -> 128, and never the
        # low-byte truncation that a plain astype(uint8) would do.
        return ((decoded.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise ImageReadError(path, f"unsupported sample type {decoded.dtype}")


def _composite_on_black(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Returns round(colour * alpha / 255): transparent pixels become black."""
    product = colour.astype(np.uint16) * alpha.astype(np.uint16)
    return ((product + 127) // 255).astype(np.uint8)


# --------------------------------------------------------------------------
# Writing helpers.


def _to_bgr_uint8_for_writing(path: Path, image: np.ndarray) -> np.ndarray:
    """Validates an RGB/gray uint8 or float [0, 1] image; returns BGR uint8."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or image.size == 0:
        raise ValueError(f"cannot write {str(path)!r}: expected [H, W, 3] or [H, W], got shape {image.shape}")
    if image.dtype == np.uint8:
        pixels = image
    elif np.issubdtype(image.dtype, np.floating):
        pixels = _float01_to_uint8(path, image)
    else:
        raise ValueError(f"cannot write {str(path)!r}: dtype must be uint8 or float in [0, 1], got {image.dtype}")
    return pixels if pixels.ndim == 2 else np.ascontiguousarray(pixels[:, :, ::-1])


def _float01_to_uint8(path: Path, image: np.ndarray) -> np.ndarray:
    """Rounds a float [0, 1] image to uint8, refusing other ranges."""
    if not np.all(np.isfinite(image)):
        raise ValueError(f"cannot write {str(path)!r}: image contains NaN or infinity")
    low, high = float(image.min()), float(image.max())
    # A little overshoot is normal for network outputs; anything beyond is
    # almost surely a [0, 255] or [-1, 1] image that would be saved wrong.
    tolerance = 0.01
    if low < -tolerance or high > 1.0 + tolerance:
        raise ValueError(
            f"cannot write {str(path)!r}: float image must be in [0, 1], got [{low:.3g}, {high:.3g}]"
        )
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
