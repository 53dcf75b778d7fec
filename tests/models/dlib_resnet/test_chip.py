"""Tests for semiadv.models.dlib_resnet.chip: the fixed warp to dlib's chip and its constant."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.models.dlib_resnet import chip, network

from _shared_data import SHARED_FACES


def _require_dlib():
    """dlib and face_recognition_models, or a skip saying how to install them."""
    reason = "dlib is not installed: pip install -e '.[dlib]'"
    return (pytest.importorskip("dlib", reason=reason),
            pytest.importorskip("face_recognition_models", reason=reason))


def test_fixed_warp_matches_opencv_bilinear_and_keeps_affine_ramps():
    import cv2

    matrix = np.array([[1.1, -0.05, -0.04], [0.05, 1.1, -0.06]])
    size, out = 32, 24
    layer = chip.FixedAffineWarp(out, matrix)
    image = np.random.default_rng(1).random((1, size, size, 2), dtype=np.float32)
    got = keras.ops.convert_to_numpy(layer(image))[0]
    # The same map in pixel indices, output -> input, for cv2.warpAffine's WARP_INVERSE_MAP.
    to_output = np.array([[1 / out, 0, 0.5 / out], [0, 1 / out, 0.5 / out], [0, 0, 1]])
    to_input = np.array([[size, 0, -0.5], [0, size, -0.5]])
    pixels = to_input @ np.vstack([matrix, [0, 0, 1]]) @ to_output
    expected = cv2.warpAffine(image[0], pixels, (out, out), flags=cv2.INTER_LINEAR
                              | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    # OpenCV interpolates with 5-bit fixed-point weights (errors up to ~1/64 of a step between
    # neighbours); half a pixel off would be errors ~0.3 on this random image.
    np.testing.assert_allclose(got, expected, atol=0.02)
    # Bilinear sampling reproduces an affine image exactly where it does not read the border.
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    ramp = (0.3 * cols - 0.2 * rows + 1.0)[None, :, :, None]
    warped = keras.ops.convert_to_numpy(layer(ramp))[0, :, :, 0]
    centres = (np.arange(out) + 0.5) / out
    v_x, v_y = np.meshgrid(centres, centres)
    u_x = matrix[0, 0] * v_x + matrix[0, 1] * v_y + matrix[0, 2]
    u_y = matrix[1, 0] * v_x + matrix[1, 1] * v_y + matrix[1, 2]
    x, y = u_x * size - 0.5, u_y * size - 0.5
    inside = (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)
    assert inside.mean() > 0.7
    np.testing.assert_allclose(warped[inside], (0.3 * x - 0.2 * y + 1.0)[inside], atol=1e-4)
    assert np.all(warped[(x < -1) | (y < -1)] == 0)


def _bilinear_reference(image, matrix, out):
    """The warp written out pixel by pixel: 4 corners, zeros outside (numpy, float64)."""
    height, width = image.shape[:2]
    result = np.zeros((out, out, image.shape[2]))
    for row in range(out):
        for col in range(out):
            v = np.array([(col + 0.5) / out, (row + 0.5) / out, 1.0])
            x = (matrix[0] @ v) * width - 0.5
            y = (matrix[1] @ v) * height - 0.5
            for cy in (np.floor(y), np.floor(y) + 1):
                for cx in (np.floor(x), np.floor(x) + 1):
                    if 0 <= cx < width and 0 <= cy < height:
                        weight = (1 - abs(x - cx)) * (1 - abs(y - cy))
                        result[row, col] += weight * image[int(cy), int(cx)]
    return result


def test_fixed_warp_equals_the_pixel_by_pixel_bilinear_map():
    matrix = np.array([[1.1, -0.05, -0.04], [0.05, 1.1, -0.06]])
    images = np.random.default_rng(6).random((3, 16, 16, 2), dtype=np.float32)
    got = keras.ops.convert_to_numpy(chip.FixedAffineWarp(20, matrix)(images))
    for image, warped in zip(images, got):
        np.testing.assert_allclose(warped, _bilinear_reference(image, matrix, 20), atol=1e-5)


def test_fixed_warp_gradient_is_the_exact_transpose():
    layer = chip.FixedAffineWarp(20, chip.CHIP_IN_CROP)
    rng = np.random.default_rng(2)
    image = tf.constant(rng.random((2, 16, 16, 3), dtype=np.float32))
    probe = tf.constant(rng.standard_normal((2, 20, 20, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(image)
        inner = tf.reduce_sum(layer(image) * probe)
    gradient = tape.gradient(inner, image)
    # For a linear map L: d<L x, y>/dx = L^T y, and <x, L^T y> = <L x, y>.
    assert float(tf.reduce_sum(image * gradient)) == pytest.approx(float(inner), rel=1e-5)
    assert float(tf.reduce_mean(tf.abs(gradient))) > 0.1


def _rgb(path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.slow
def test_chip_transform_constants_remeasure(shared_faces):
    """Re-measures `CHIP_IN_CROP` exactly as its comment says."""
    _require_dlib()
    files = sorted((shared_faces / "utkface").glob("*.jpg"))[::7][:3000]
    matrix, used = chip.measure_chip_transform(_rgb(path) for path in files)
    print(f"chip in crop, from {used} crops:\n{np.array2string(matrix, precision=5)}")
    assert used > 2900
    np.testing.assert_allclose(matrix, chip.CHIP_IN_CROP, atol=2e-5)


def _celeba_crops(shared_faces, image_size, per_person=8):
    """Up to `per_person` photos of each held-out CelebA person, aligned by the package."""
    from semiadv.align import face

    crops, identity = [], []
    folders = sorted(path for path in (shared_faces / "celeba_identities").iterdir()
                     if path.is_dir())
    for person, folder in enumerate(folders):
        for path in sorted(folder.glob("*.jpg"))[:per_person]:
            crop = face.align_face(_rgb(path), image_size).crop
            if crop is not None:
                crops.append(crop)
                identity.append(person)
    return np.stack(crops), np.asarray(identity)


def _tmr(embeddings, genuine, impostor):
    from semiadv.evaluation import metrics

    return metrics.tmr_at_fmr(metrics.similarity(embeddings, embeddings, genuine),
                              metrics.similarity(embeddings, embeddings, impostor), 0.01)


@pytest.fixture(scope="module")
def celeba_rates():
    """TMR@FMR 1% on held-out people (128x128 crops of our aligner): dlib with its own
    5-point alignment of each crop, the port through dlib's per-crop chip framing, and the
    port through the one fixed warp."""
    from semiadv.evaluation import metrics
    from semiadv.evaluation.dlib_matcher import DlibMatcher

    dlib, face_models = _require_dlib()
    if not SHARED_FACES.is_dir():
        pytest.skip(f"real face data not found at {SHARED_FACES} (../shared/faces)")
    crops, identity = _celeba_crops(SHARED_FACES, 128)
    faces = crops.astype(np.float32) / 255.0
    genuine, impostor = metrics.make_pairs(identity, len(faces), impostors_per_probe=50)
    assert len(genuine) > 1000 and len(impostor) > 10000
    reference = DlibMatcher()
    landmarks = dlib.shape_predictor(face_models.pose_predictor_five_point_model_location())
    box = dlib.rectangle(0, 0, 127, 127)
    per_crop = np.stack([
        np.asarray(chip.FixedAffineWarp(150, chip.chip_to_crop_matrix(
            dlib.get_face_chip_details(landmarks(crop, box), size=150, padding=0.25),
            128, 128))(face[None]))[0] for crop, face in zip(crops, faces)])
    port = network.build_dlib_resnet()
    rates = {
        "dlib": _tmr(reference(faces), genuine, impostor),
        "port, per-crop chip": _tmr(port.predict(per_crop, batch_size=32, verbose=0),
                                    genuine, impostor),
        "port, fixed warp": _tmr(network.build_dlib_matcher(128, 3).predict(
            faces, batch_size=32, verbose=0), genuine, impostor),
    }
    print(f"{len(faces)} crops, {len(genuine)} genuine and {len(impostor)} impostor pairs: "
          + ", ".join(f"{name} {rate:.3f}" for name, rate in rates.items()))
    return rates


@pytest.mark.slow
def test_port_with_dlibs_own_framing_matches_dlib_on_celeba_identities(celeba_rates):
    # The port and the warp layer are exact: given dlib's per-crop chip, the same TMR.
    assert abs(celeba_rates["port, per-crop chip"] - celeba_rates["dlib"]) <= 0.01


@pytest.mark.slow
def test_port_through_the_fixed_warp_within_3_points_of_dlib(celeba_rates):
    # The package aligns with dlib's own 5-point landmarks, so one fixed warp frames its
    # crops nearly as dlib's per-crop chip does (RESULTS.md, the fixed chip warp).
    assert celeba_rates["port, fixed warp"] >= celeba_rates["dlib"] - 0.03

