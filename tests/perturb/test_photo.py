"""Tests of semiadv.perturb.photo: a crop's change carried back onto the whole photo."""

import numpy as np
import pytest

from semiadv.align import geometry
from semiadv.perturb import photo

SIZE = 32


def _transform(eyes, size=SIZE):
    """The photo-to-crop matrix that puts `eyes` on the canonical points, as alignment does."""
    return geometry.similarity_from_points(eyes, geometry.canonical_eye_points(size))


def _noise_photo(shape, seed=0, dtype=np.uint8):
    high = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, high + 1, shape, dtype=np.uint64).astype(dtype)


def test_face_mask_is_one_on_the_face_and_zero_at_the_crop_border():
    mask = photo.face_mask(64)
    assert mask.shape == (64, 64) and mask.dtype == np.float32
    eyes = geometry.canonical_eye_points(64).round().astype(int)
    assert all(mask[y, x] == 1.0 for x, y in eyes)  # Eyes and nose inside the full region.
    assert mask[int(0.55 * 64), 31] == 1.0
    assert mask[0].max() == 0.0 and mask[:, 0].max() == 0.0 and mask[:, -1].max() == 0.0
    assert mask[-1].max() == 0.0  # The chin fades out before the crop's bottom edge.
    assert 0.2 * 64 * 64 < mask.sum() < 0.7 * 64 * 64
    # Feathered: no jump between neighbours larger than a fraction of the range.
    assert np.abs(np.diff(mask, axis=0)).max() < 0.35 and np.abs(np.diff(mask, axis=1)).max() < 0.35


def test_change_lands_inside_the_mask_and_nowhere_else():
    pixels = _noise_photo((120, 160, 3))
    eyes = np.array([[60.0, 50.0], [90.0, 46.0]])  # A slightly tilted face.
    transform = _transform(eyes)
    change = np.full((SIZE, SIZE, 3), 0.2, np.float32)
    edited = photo.edit_pixels(pixels, [change], [transform])
    assert edited.shape == pixels.shape and edited.dtype == np.uint8
    box, _, weight = photo.photo_change(pixels.shape, [change], [transform])
    touched = np.zeros(pixels.shape[:2], bool)
    touched[box[1]:box[3], box[0]:box[2]] = weight > 0
    np.testing.assert_array_equal(edited[~touched], pixels[~touched])  # Bit-identical outside.
    # Between the eyes the change is the full 0.2 * 255 = 51 levels (clipped at 255).
    x, y = eyes.mean(axis=0).round().astype(int)
    expected = np.minimum(pixels[y, x].astype(int) + 51, 255)
    np.testing.assert_array_equal(edited[y, x], expected)
    # Far from the face nothing moved.
    assert touched[:, :20].sum() == 0 and touched[110:].sum() == 0


def test_change_is_upsampled_smoothly_at_the_photos_resolution():
    pixels = np.full((400, 400, 3), 100, np.uint8)
    eyes = np.array([[150.0, 150.0], [250.0, 150.0]])  # The crop is ~4x smaller than the face.
    ramp = np.linspace(0.0, 0.2, SIZE, dtype=np.float32)
    change = np.repeat(np.repeat(ramp[None, :, None], SIZE, axis=0), 3, axis=2)
    edited = photo.edit_pixels(pixels, [change], [_transform(eyes)]).astype(int)
    row = edited[200, 150:250, 0]
    steps = np.diff(row)
    # A linear ramp across the face: steps of at most a level or two, never blocks of 4 px.
    # The eyes' 100 px are 12 crop px here: 12 / 31 of the ramp's 51 levels.
    assert row[-1] - row[0] > 15 and steps.min() >= 0 and steps.max() <= 2


def test_a_face_at_the_photos_edge_is_clipped():
    pixels = _noise_photo((80, 100, 3), seed=1)
    eyes = np.array([[-5.0, 20.0], [15.0, 20.0]])  # Half the face lies left of the photo.
    change = np.full((SIZE, SIZE, 3), -0.1, np.float32)
    edited = photo.edit_pixels(pixels, [change], [_transform(eyes)])
    assert edited.shape == pixels.shape
    changed = np.any(edited != pixels, axis=2)
    assert changed[:, :10].sum() > 50 and changed[:, 40:].sum() == 0
    assert np.all(edited.astype(int) <= pixels.astype(int))  # Only darkened, never wrapped.


def test_overlapping_faces_are_averaged_not_added_twice():
    pixels = np.full((100, 100, 3), 100, np.uint8)
    eyes = np.array([[40.0, 40.0], [60.0, 40.0]])
    change = np.full((SIZE, SIZE, 3), 0.1, np.float32)
    once = photo.edit_pixels(pixels, [change], [_transform(eyes)])
    twice = photo.edit_pixels(pixels, [change, change], [_transform(eyes)] * 2)
    np.testing.assert_allclose(once.astype(int), twice.astype(int), atol=1)
    assert np.any(once != pixels)


@pytest.mark.parametrize("shape, dtype", [((60, 70), np.uint8), ((60, 70, 1), np.uint8),
                                          ((60, 70, 4), np.uint8), ((60, 70, 3), np.uint16)])
def test_gray_alpha_and_16_bit_photos_keep_their_kind(shape, dtype):
    pixels = _noise_photo(shape, seed=2, dtype=dtype) // 2
    eyes = np.array([[25.0, 25.0], [45.0, 25.0]])
    change = np.zeros((SIZE, SIZE, 3), np.float32)
    change[..., 1] = 0.3  # Green only: a gray photo gets its luma, 0.587 * 0.3.
    edited = photo.edit_pixels(pixels, [change], [_transform(eyes)], order="bgr")
    assert edited.shape == pixels.shape and edited.dtype == pixels.dtype
    x, y = 35, 30  # Between the eyes: the mask is 1.
    scale = np.iinfo(dtype).max
    if len(shape) == 2 or shape[2] == 1:
        expected = pixels[y, x].astype(float) + 0.587 * 0.3 * scale
        np.testing.assert_allclose(edited[y, x], expected, atol=0.51)  # Rounded (float32).
    else:
        # BGR order: green is channel 1 either way; blue and red and the alpha are untouched.
        assert abs(float(edited[y, x, 1]) - (pixels[y, x, 1] + 0.3 * scale)) <= 0.51
        np.testing.assert_array_equal(edited[..., 0], pixels[..., 0])
        np.testing.assert_array_equal(edited[..., 2], pixels[..., 2])
        if shape[2] == 4:
            np.testing.assert_array_equal(edited[..., 3], pixels[..., 3])


def test_gray_change_of_a_one_channel_export_applies_to_every_colour():
    pixels = np.full((60, 70, 3), 50, np.uint8)
    eyes = np.array([[25.0, 25.0], [45.0, 25.0]])
    edited = photo.edit_pixels(pixels, [np.full((SIZE, SIZE, 1), 0.2, np.float32)],
                               [_transform(eyes)])
    np.testing.assert_array_equal(edited[30, 35], [101, 101, 101])


def test_edit_pixels_refuses_other_samples():
    with pytest.raises(ValueError, match="uint8 or uint16"):
        photo.edit_pixels(np.zeros((4, 4, 3), np.float32), [], [])
    with pytest.raises(ValueError, match="order"):
        photo.edit_pixels(np.zeros((4, 4, 3), np.uint8), [], [], order="rbg")


class _TwoFaces:
    """A FaceDetector that finds two fixed faces with their eyes."""

    boxes = [(20, 20, 60, 60), (120, 30, 40, 40)]

    def detect_faces(self, gray):
        return list(self.boxes) if gray.shape[1] == 200 else []  # The upright view only.

    def detect_eyes(self, gray, box):
        x, y, w, h = box
        return (x + 0.3 * w, y + 0.38 * h), (x + 0.69 * w, y + 0.38 * h)


def test_edit_photo_sends_every_face_in_one_call_and_edits_each():
    rgb = _noise_photo((120, 200, 3), seed=3)
    calls = []

    def brighten(crops):
        calls.append(crops.shape)
        return np.clip(crops + 0.25, 0.0, 1.0)

    edited, faces = photo.edit_photo(rgb, brighten, SIZE, detector=_TwoFaces())
    assert calls == [(2, SIZE, SIZE, 3)]
    assert [f.face_box for f in faces] == _TwoFaces.boxes  # Largest first.
    changed = np.any(edited != rgb, axis=2)
    for x, y, w, h in _TwoFaces.boxes:
        assert changed[y + h // 2, x + w // 2]
    assert not changed[:, 95:110].any() and not changed[110:].any()
    gray, _ = photo.edit_photo(rgb, lambda crops: crops * 0.5, SIZE, channels=1,
                               detector=_TwoFaces())
    assert np.any(gray != rgb)


def test_edit_photo_without_a_face_returns_the_photo_unchanged():
    class NoFace:
        def detect_faces(self, gray):
            return []

        def detect_eyes(self, gray, box):
            return None

    rgb = _noise_photo((50, 60, 3))
    edited, faces = photo.edit_photo(rgb, pytest.fail, SIZE, detector=NoFace())
    assert faces == [] and np.array_equal(edited, rgb) and edited is not rgb


def test_edit_photo_refuses_a_perturber_that_changes_the_shape():
    rgb = _noise_photo((120, 200, 3))
    with pytest.raises(ValueError, match="shape"):
        photo.edit_photo(rgb, lambda crops: crops[:1], SIZE, detector=_TwoFaces())


def test_the_write_back_imports_no_tensorflow():
    """TF Serving clients and the Beam driver import these without TensorFlow."""
    from _python import run_python

    run_python("import sys\n"
               "from semiadv.perturb import outputs, photo, photoprep\n"
               "from semiadv.utils import metadata\n"
               "assert 'tensorflow' not in sys.modules, 'the write-back imported TensorFlow'\n")
