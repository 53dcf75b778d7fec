"""Tests for semiadv.utils.imageio: every bad file fails clearly, every good one reads."""

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from semiadv.utils import imageio
from semiadv.utils.imageio import ImageReadError



def _png_bytes(width, height, color_type, bit_depth, rows, palette=None, transparency=None):
    """Encodes a PNG by hand (for layouts cv2.imwrite cannot produce).

    rows: raw bytes of each scanline, without the filter byte.
    """

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = chunk(b"IHDR", header)
    if palette is not None:
        body += chunk(b"PLTE", bytes(v for colour in palette for v in colour))
    if transparency is not None:
        body += chunk(b"tRNS", bytes(transparency))
    raw = b"".join(b"\x00" + row for row in rows)
    body += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _write_bgr(path, bgr):
    ok, encoded = cv2.imencode(Path(path).suffix, bgr)
    assert ok
    Path(path).write_bytes(encoded.tobytes())
    return Path(path)


@pytest.fixture
def photo():
    """A smooth 48x64 RGB gradient (JPEG-friendly)."""
    ys, xs = np.mgrid[0:48, 0:64]
    return np.stack([xs * 4, ys * 5, 255 - xs * 2], axis=-1).astype(np.uint8)


# --------------------------------------------------------------------------
# Good files.


def test_png_round_trip_is_exact(tmp_path, photo):
    path = tmp_path / "photo.png"
    imageio.write_image(path, photo)
    image = imageio.read_image(path)
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    np.testing.assert_array_equal(image, photo)


def test_jpeg_round_trip_is_close_and_rgb_ordered(tmp_path, photo):
    path = tmp_path / "photo.jpg"
    imageio.write_image(path, photo)
    image = imageio.read_image(path)
    assert image.shape == (48, 64, 3)
    assert np.abs(image.astype(int) - photo).mean() < 3.0
    # Red grows to the right: proves RGB (not BGR) order.
    assert image[:, -1, 0].mean() > image[:, 0, 0].mean() + 200


def test_write_image_accepts_float_in_unit_range(tmp_path):
    image = np.zeros((4, 4, 3), np.float32)
    image[..., 1] = 1.0
    image[0, 0] = (0.5, 0.5, 0.5)
    path = tmp_path / "float.png"
    imageio.write_image(path, image)
    read = imageio.read_image(path)
    assert tuple(read[1, 1]) == (0, 255, 0)
    assert tuple(read[0, 0]) == (128, 128, 128)


def test_grayscale_png_and_jpeg_become_three_equal_channels(tmp_path):
    gray = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))
    for name in ("gray.png", "gray.jpg"):
        path = _write_bgr(tmp_path / name, gray)
        image = imageio.read_image(path)
        assert image.shape == (16, 32, 3)
        np.testing.assert_array_equal(image[..., 0], image[..., 2])
    np.testing.assert_array_equal(imageio.read_image(tmp_path / "gray.png")[..., 1], gray)


def test_rgba_png_is_composited_on_black(tmp_path):
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., :3] = (50, 100, 200)  # BGR of RGB (200, 100, 50)
    bgra[0, :, 3] = (255, 128, 0)
    bgra[1, :, 3] = 255
    image = imageio.read_image(_write_bgr(tmp_path / "rgba.png", bgra))
    assert image.shape == (2, 3, 3)
    assert tuple(image[0, 0]) == (200, 100, 50)  # opaque: unchanged
    assert tuple(image[0, 1]) == (100, 50, 25)  # half transparent: halved
    assert tuple(image[0, 2]) == (0, 0, 0)  # transparent: black


def test_gray_alpha_png_is_composited_on_black(tmp_path):
    rows = [bytes([200, 255, 200, 0])]  # (gray, alpha) x 2
    path = tmp_path / "la.png"
    path.write_bytes(_png_bytes(2, 1, color_type=4, bit_depth=8, rows=rows))
    image = imageio.read_image(path)
    assert image.shape == (1, 2, 3)
    assert tuple(image[0, 0]) == (200, 200, 200)
    assert tuple(image[0, 1]) == (0, 0, 0)


def test_16bit_png_is_scaled_not_truncated(tmp_path):
    gray16 = np.array([[0, 257, 32768, 65535]], np.uint16)
    image = imageio.read_image(_write_bgr(tmp_path / "gray16.png", gray16))
    assert image.dtype == np.uint8
    # Truncation to the low byte would give 0, 1, 0, 255.
    np.testing.assert_array_equal(image[0, :, 0], [0, 1, 128, 255])

    bgr16 = np.zeros((1, 1, 3), np.uint16)
    bgr16[0, 0] = (65535, 32768, 0)  # B, G, R
    image = imageio.read_image(_write_bgr(tmp_path / "colour16.png", bgr16))
    assert tuple(image[0, 0]) == (0, 128, 255)


def test_palette_png_is_expanded(tmp_path):
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    path = tmp_path / "palette.png"
    path.write_bytes(_png_bytes(3, 1, color_type=3, bit_depth=8, rows=[bytes([2, 0, 1])], palette=palette))
    image = imageio.read_image(path)
    assert [tuple(p) for p in image[0]] == [(0, 0, 255), (255, 0, 0), (0, 255, 0)]


def test_non_ascii_path(tmp_path, photo):
    path = tmp_path / "visages é 顔" / "photo ü.png"
    imageio.write_image(path, photo)
    np.testing.assert_array_equal(imageio.read_image(path), photo)


def test_jpeg_with_trailing_bytes_after_end_marker_reads(tmp_path, photo):
    path = tmp_path / "trailer.jpg"
    imageio.write_image(path, photo)
    path.write_bytes(path.read_bytes() + b"vendor trailer" * 50)
    imageio.check_image_file(path)
    assert imageio.read_image(path).shape == (48, 64, 3)


def test_content_not_extension_decides_the_format(tmp_path, photo):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(cv2.imencode(".png", photo[..., ::-1])[1].tobytes())
    np.testing.assert_array_equal(imageio.read_image(path), photo)


# --------------------------------------------------------------------------
# Bad files: each error names the file.


def _assert_read_error(path, *fragments, caught_by_check=True):
    """Asserts read_image (and check_image_file) fail naming the file."""
    if caught_by_check:
        with pytest.raises(ImageReadError):
            imageio.check_image_file(path)
    with pytest.raises(ImageReadError) as info:
        imageio.read_image(path)
    message = str(info.value)
    assert Path(path).name in message
    for fragment in fragments:
        assert fragment in message
    return info.value


def test_truncated_jpeg(tmp_path, photo):
    path = tmp_path / "truncated.jpg"
    imageio.write_image(path, photo)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    error = _assert_read_error(path, "truncated JPEG")
    assert error.path == path


def test_jpeg_cut_inside_its_header(tmp_path, photo):
    path = tmp_path / "cut_header.jpg"
    imageio.write_image(path, photo)
    path.write_bytes(path.read_bytes()[:40])
    _assert_read_error(path, "truncated JPEG")


def test_truncated_png(tmp_path, photo):
    path = tmp_path / "truncated.png"
    imageio.write_image(path, photo)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error(path, "truncated PNG")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    _assert_read_error(path, "empty file")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    _assert_read_error(path, "not an image")


def test_missing_file_and_folder(tmp_path):
    _assert_read_error(tmp_path / "missing.png", "does not exist")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _assert_read_error(folder, "folder")


def test_corrupt_png_payload(tmp_path):
    path = tmp_path / "corrupt.png"
    good = _png_bytes(4, 4, color_type=0, bit_depth=8, rows=[bytes(4)] * 4)
    start = good.index(b"IDAT") + 4
    path.write_bytes(good[:start] + b"\x00garbage!" + good[start + 9 :])  # IEND still there
    imageio.check_image_file(path)  # complete on the outside: only decoding can tell
    _assert_read_error(path, "corrupt PNG", caught_by_check=False)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path, photo):
    path = tmp_path / "locked.png"
    imageio.write_image(path, photo)
    path.chmod(0)
    try:
        _assert_read_error(path, "permission denied")
    finally:
        path.chmod(0o644)


# --------------------------------------------------------------------------
# Huge images.


@pytest.fixture(scope="session")
def huge_jpeg(tmp_path_factory):
    """A 12000x12000 flat grey JPEG (144 Mpx), made once per session.

    Grey rather than colour: a third of the encoding time, same decoder path.
    """
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    gray = np.full((12000, 12000), 90, np.uint8)
    path.write_bytes(cv2.imencode(".jpg", gray)[1].tobytes())
    return path


def test_huge_jpeg_is_decoded_reduced(huge_jpeg):
    image = imageio.read_image(huge_jpeg)  # default limit 50 Mpx -> 1/2 scale
    assert image.shape == (6000, 6000, 3)
    np.testing.assert_allclose(image[::500, ::500].reshape(-1, 3).mean(axis=0), (90, 90, 90), atol=2)
    assert imageio.read_image(huge_jpeg, max_pixels=3_000_000).shape == (1500, 1500, 3)


def test_huge_jpeg_reads_in_bounded_memory(huge_jpeg):
    # A fresh process, so the peak RSS measures the read alone; a full decode
    # would need 432 MB for the RGB pixels alone.
    script = textwrap.dedent(
        f"""
        import resource, sys
        # semiadv.utils imports no TensorFlow, so the peak RSS is the read's.
        from semiadv.utils import imageio
        assert "tensorflow" not in sys.modules
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = imageio.read_image({str(huge_jpeg)!r})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(image.shape[0], (after - before) // 1024)
        """
    )
    output = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    side, grown_mb = map(int, output.split())
    assert side == 6000
    assert grown_mb < 300, f"reading grew RSS by {grown_mb} MB"


def test_huge_image_beyond_limit_is_refused_with_its_size(huge_jpeg, tmp_path):
    with pytest.raises(ImageReadError, match=r"huge\.jpg.*12000x12000"):
        imageio.read_image(huge_jpeg, max_pixels=1_000_000)  # 1/8 would still be 2.25 Mpx
    # Formats without reduced decoding are refused above the limit.
    path = tmp_path / "wide.png"
    imageio.write_image(path, np.zeros((10, 300, 3), np.uint8))
    with pytest.raises(ImageReadError, match=r"wide\.png.*300x10"):
        imageio.read_image(path, max_pixels=2000)


# --------------------------------------------------------------------------
# Writing and listing.


def test_write_image_is_atomic_and_creates_folders(tmp_path, photo):
    path = tmp_path / "a" / "b" / "out.jpg"
    imageio.write_image(path, photo)
    imageio.write_image(path, photo[:10])  # replaces in place
    assert imageio.read_image(path).shape == (10, 64, 3)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jpg"]  # no temp files left


def test_write_image_rejects_bad_input_and_keeps_old_file(tmp_path, photo):
    path = tmp_path / "keep.png"
    imageio.write_image(path, photo)
    with pytest.raises(ValueError, match=r"keep\.png.*\[0, 1\]"):
        imageio.write_image(path, photo.astype(np.float32))  # [0, 255] floats
    with pytest.raises(ValueError, match="extension"):
        imageio.write_image(tmp_path / "out.gif", photo)
    with pytest.raises(ValueError, match="shape"):
        imageio.write_image(path, np.zeros((4, 4, 2), np.uint8))
    np.testing.assert_array_equal(imageio.read_image(path), photo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_list_images(tmp_path):
    for name in ("b.JPG", "a.png", "sub/c.jpeg", "sub/deeper/d.webp", "notes.txt", ".hidden.jpg", "._a.png", ".cache/e.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert imageio.list_images(tmp_path) == [tmp_path / "a.png", tmp_path / "b.JPG"]
    assert [p.relative_to(tmp_path).as_posix() for p in imageio.list_images(tmp_path, recursive=True)] == [
        "a.png",
        "b.JPG",
        "sub/c.jpeg",
        "sub/deeper/d.webp",
    ]
    (tmp_path / "empty").mkdir()
    assert imageio.list_images(tmp_path / "empty") == []


def test_list_images_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        imageio.list_images(tmp_path / "nowhere")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=r"file\.jpg"):
        imageio.list_images(tmp_path / "file.jpg")


# --------------------------------------------------------------------------
# Decoding unchanged, to write back.


def test_decode_unchanged_keeps_gray_alpha_and_16_bits(tmp_path):
    rng = np.random.default_rng(5)
    cases = {"gray.png": rng.integers(0, 256, (9, 11), dtype=np.uint8),
             "bgra.png": rng.integers(0, 256, (9, 11, 4), dtype=np.uint8),
             "deep.png": rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)}
    for name, pixels in cases.items():
        cv2.imwrite(str(tmp_path / name), pixels)
        decoded = imageio.decode_unchanged((tmp_path / name).read_bytes(), tmp_path / name)
        assert decoded.dtype == pixels.dtype
        np.testing.assert_array_equal(decoded, pixels)
        # to_rgb gives what read_image gives.
        np.testing.assert_array_equal(imageio.to_rgb(name, decoded), imageio.read_image(tmp_path / name))
        again = imageio.encode_unchanged(name, decoded)
        np.testing.assert_array_equal(imageio.decode_unchanged(again, name), pixels)
    gray_jpeg = imageio.encode_image("g.jpg", cases["gray.png"])
    assert imageio.inspect_image(gray_jpeg, "g.jpg").components == 1
    assert imageio.decode_unchanged(gray_jpeg, "g.jpg").shape == (9, 11)  # Written back gray.
    with pytest.raises(ValueError, match="16-bit"):
        imageio.encode_unchanged("deep.jpg", cases["deep.png"])


def test_decode_unchanged_refuses_a_reduced_decode(huge_jpeg):
    with pytest.raises(imageio.ImageTooLargeError, match=r"huge\.jpg.*too large to edit"):
        imageio.decode_unchanged(huge_jpeg.read_bytes(), huge_jpeg)


def test_inspect_image_finds_animations_and_jpeg_components():
    png = imageio.encode_image("a.png", np.zeros((4, 4, 3), np.uint8))
    assert not imageio.inspect_image(png, "a.png").animated
    control = struct.pack(">III", 8, 2, 0)  # acTL: its length, 2 frames, looped forever.
    actl = control[:4] + b"acTL" + control[4:] + struct.pack(">I", zlib.crc32(b"acTL" + control[4:]))
    animated = png[:33] + actl + png[33:]
    assert imageio.inspect_image(animated, "a.png").animated
    header = imageio.inspect_image(imageio.encode_image("a.jpg", np.zeros((4, 6, 3), np.uint8)), "a.jpg")
    assert (header.format, header.width, header.height, header.components) == ("jpeg", 6, 4, 3)


def test_jpeg_quality_is_the_callers():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(imageio.encode_image("a.jpg", noise, jpeg_quality=30)) < \
        0.6 * len(imageio.encode_image("a.jpg", noise))
    with pytest.raises(ValueError, match="1..100"):
        imageio.encode_image("a.jpg", noise, jpeg_quality=0)
