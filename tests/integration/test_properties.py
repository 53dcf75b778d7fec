"""Property-based tests (hypothesis) of decode -> align -> perturb and of the signatures.

The contracts:
- `imageio.read_image` returns uint8 RGB [H, W, 3] or raises ImageReadError naming the file,
  whatever the bytes; never another exception.
- `face.align_face` on any uint8 RGB image returns an AlignResult with a status in STATUSES
  and a uint8 [S, S, 3] crop (None only for "no_face").
- The image signatures take float32 [N, H, W, C] for any N >= 0: pixels finite and in [0, 1]
  (up to `semiadv.export.signatures.PIXEL_TOLERANCE`, then clipped) give outputs of the same
  shape, finite and in [0, 1]; NaN, infinity or values further out raise InvalidArgumentError.
- The encoded signatures raise InvalidArgumentError for bytes that are not an image.
"""

import struct
import zlib

import cv2
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semiadv.align import face
from semiadv.export.signatures import PIXEL_TOLERANCE
from semiadv.prototypes.kinds import KINDS
from semiadv.utils import imageio

SIZE, CHANNELS = 16, 3
SETTINGS = settings(deadline=None, max_examples=30, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

MAGIC = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF\x00\x00\x00\x00WEBP"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


@pytest.fixture(scope="module")
def signatures(tiny_export_16):
    loaded = tf.saved_model.load(str(tiny_export_16))
    return loaded.signatures


def _check_rgb(image):
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 1


def _read_or_named_error(path):
    """read_image's result, or None after checking the ImageReadError names the file."""
    try:
        image = imageio.read_image(path)
    except imageio.ImageReadError as error:
        assert str(path) in str(error)
        return None
    _check_rgb(image)
    return image


@SETTINGS
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=2000))
def test_random_bytes_never_crash_the_reader(scratch, prefix, body):
    path = scratch / "random.jpg"
    path.write_bytes(prefix + body)
    _read_or_named_error(path)


@SETTINGS
@given(data=st.data(), fmt=st.sampled_from([".png", ".jpg"]), cut=st.integers(0, 3))
def test_damaged_real_images_never_crash_the_reader(scratch, data, fmt, cut):
    """A valid encoding with bytes cut off or flipped: read cleanly or refused by name."""
    image = data.draw(hnp.arrays(np.uint8, (data.draw(st.integers(1, 40)),
                                            data.draw(st.integers(1, 40)), 3)))
    encoded = bytearray(cv2.imencode(fmt, image)[1].tobytes())
    if cut:
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded = encoded[:position] if cut == 1 else encoded
        if cut >= 2 and len(encoded):
            encoded[position % len(encoded)] ^= data.draw(st.integers(1, 255))
    path = scratch / f"damaged{fmt}"
    path.write_bytes(bytes(encoded))
    _read_or_named_error(path)


def _gray_alpha_png(gray, alpha):
    """An 8-bit gray+alpha PNG (cv2 cannot write one)."""
    height, width = gray.shape

    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))

    rows = b"".join(b"\x00" + np.dstack([gray, alpha]).tobytes()[y * width * 2:(y + 1) * width * 2]
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 4, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@st.composite
def encoded_images(draw):
    """(bytes, extension, height, width) of a valid image of random dtype, channels and size."""
    height, width = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    channels = draw(st.sampled_from([1, 2, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    fill = draw(st.sampled_from(["noise", "flat", "gradient"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    top = np.iinfo(dtype).max
    if fill == "noise":
        pixels = rng.integers(0, top, (height, width, channels), dtype=dtype, endpoint=True)
    elif fill == "flat":
        pixels = np.full((height, width, channels), rng.integers(0, top), dtype)
    else:
        ramp = np.linspace(0, top, width).astype(dtype)
        pixels = np.broadcast_to(ramp[None, :, None], (height, width, channels)).copy()
    if channels == 2:
        return _gray_alpha_png(pixels[..., 0].astype(np.uint8), pixels[..., 1].astype(np.uint8)), ".png", height, width
    pixels = pixels[..., 0] if channels == 1 else pixels
    extension = ".jpg" if dtype == np.uint8 and channels != 4 and draw(st.booleans()) else ".png"
    ok, encoded = cv2.imencode(extension, pixels)
    assert ok
    return encoded.tobytes(), extension, height, width


@settings(SETTINGS, max_examples=25)
@given(image=encoded_images(), image_size=st.sampled_from([1, 16, 33]))
def test_valid_images_decode_and_align(scratch, image, image_size):
    encoded, extension, height, width = image
    path = scratch / f"valid{extension}"
    path.write_bytes(encoded)
    rgb = imageio.read_image(path)
    _check_rgb(rgb)
    assert rgb.shape == (height, width, 3)
    result = face.align_face(rgb, image_size)
    assert isinstance(result, face.AlignResult) and result.status in face.STATUSES
    if result.status == "no_face":
        assert result.crop is None
    else:
        assert result.crop.dtype == np.uint8 and result.crop.shape == (image_size, image_size, 3)


def _pixels(allow_outside):
    if allow_outside:
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    return st.floats(0.0, 1.0, width=32)


@SETTINGS
@given(data=st.data(), batch=st.integers(0, 5), kind=st.sampled_from(KINDS),
       labelled=st.booleans(), valid=st.booleans())
def test_image_signatures_contract(signatures, data, batch, kind, labelled, valid):
    images = data.draw(hnp.arrays(np.float32, (batch, SIZE, SIZE, CHANNELS),
                                  elements=_pixels(not valid)))
    inputs = {"image": tf.constant(images)}
    name = kind
    if labelled:
        name = f"{kind}_labelled"
        male = data.draw(hnp.arrays(np.float32, (batch,), elements=st.floats(-2, 2, width=32)))
        inputs["male"] = tf.constant(male)
    in_range = bool(np.all(np.isfinite(images))
                    and np.all(images >= -PIXEL_TOLERANCE)
                    and np.all(images <= 1 + PIXEL_TOLERANCE))
    if not in_range:
        with pytest.raises(tf.errors.InvalidArgumentError, match="image"):
            signatures[name](**inputs)
        return
    outputs = signatures[name](**inputs)
    perturbed = outputs["perturbed"].numpy()
    score = outputs["male_score"].numpy()
    assert perturbed.shape == images.shape and score.shape == (batch,)
    assert np.isfinite(perturbed).all() and np.isfinite(score).all()
    assert perturbed.min(initial=0) >= 0 and perturbed.max(initial=1) <= 1
    assert score.min(initial=0) >= 0 and score.max(initial=1) <= 1


@SETTINGS
@given(prefix=st.sampled_from(MAGIC), body=st.lists(st.binary(max_size=300), min_size=1,
                                                     max_size=3),
       kind=st.sampled_from(KINDS))
def test_encoded_signatures_refuse_random_bytes(signatures, prefix, body, kind):
    batch = tf.constant([prefix + item for item in body])
    try:
        outputs = signatures[f"{kind}_encoded"](image_bytes=batch)
    except tf.errors.InvalidArgumentError:
        return
    # Only if every item happened to be a decodable image: then the outputs must be valid.
    for png in outputs["perturbed_png_bytes"].numpy():
        assert tf.io.decode_png(png).shape == (SIZE, SIZE, CHANNELS)
