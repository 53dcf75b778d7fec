"""semiadv.export.savedmodel_pb: signature input shapes read from saved_model.pb without TensorFlow."""

import subprocess
import sys
from pathlib import Path

import pytest
from tensorflow.core.protobuf import saved_model_pb2

from semiadv.export import savedmodel_pb

REPO = Path(__file__).resolve().parents[2]


def _shapes_by_tensorflow(data):
    """The same answer from TensorFlow's own message classes."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(data)
    graph = saved_model.meta_graphs[0]
    return {name: {key: None if info.tensor_shape.unknown_rank else
                   [None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim]
                   for key, info in signature.inputs.items()}
            for name, signature in graph.signature_def.items()}


def test_shapes_match_tensorflows_parse(tiny_export_16):
    data = (tiny_export_16 / "saved_model.pb").read_bytes()
    shapes = savedmodel_pb.signature_input_shapes(data)
    assert shapes == _shapes_by_tensorflow(data)
    # What the export promises: each prototype's signature takes [None, 16, 16, 3] images.
    for name in ("same", "neutral", "opposite"):
        assert shapes[name]["image"] == [None, 16, 16, 3]


def test_unknown_rank_and_missing_tag():
    saved_model = saved_model_pb2.SavedModel()
    graph = saved_model.meta_graphs.add()
    graph.meta_info_def.tags.append("train")
    graph.signature_def["any"].inputs["x"].tensor_shape.unknown_rank = True
    graph.signature_def["fixed"].inputs["x"].tensor_shape.dim.add().size = 7
    data = saved_model.SerializeToString()
    # No "serve" graph: the first one, as TensorFlow's loader falls back to.
    assert savedmodel_pb.signature_input_shapes(data) == {"any": {"x": None}, "fixed": {"x": [7]}}
    assert savedmodel_pb.signature_input_shapes(b"") == {}


def test_truncated_or_foreign_bytes_are_parse_errors(tiny_export_16):
    data = (tiny_export_16 / "saved_model.pb").read_bytes()
    for broken in (data[:len(data) // 2], data[:-1], b"\xff\xff\xff not a SavedModel"):
        with pytest.raises(savedmodel_pb.ParseError):
            savedmodel_pb.signature_input_shapes(broken)


def test_the_beam_driver_never_imports_tensorflow(tiny_export_16, tmp_path):
    pytest.importorskip("apache_beam", reason="apache_beam not installed (pip install -e '.[beam]')")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"not read by the driver")
    script = (
        "import sys\n"
        "from semiadv.perturb.beam import config as beam_config\n"
        "from semiadv.perturb.beam import pipeline  # noqa: F401  everything the driver runs\n"
        f"config = beam_config.make_config({str(tiny_export_16.parent)!r}, {str(photos)!r}, "
        f"{str(tmp_path / 'out')!r})\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:5]\n"
        "print(config.image_shape, config.export)\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               cwd=REPO, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["(16,", "16,", "3)", str(tiny_export_16)]
