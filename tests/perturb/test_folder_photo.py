"""Tests of semiadv.perturb.folder's photo output: whole photos back, every face edited,
metadata dropped unless kept, and the files that cannot be written back."""

import io
import json
import shutil

import cv2
import numpy as np
import pytest

import _photo_faces
from semiadv.align import registry
from semiadv.perturb import folder as perturb
from semiadv.perturb.report import REPORT_NAME
from semiadv.utils import imageio

SIZE = 16  # The session's tiny export (conftest's tiny_export_16).
# Pixels this far outside a face box may still be in its mask (the ellipse reaches past the
# detector's box at the forehead and chin).
MARGIN = 30


@pytest.fixture
def exported(tiny_export_16):
    return tiny_export_16


@pytest.fixture
def fixed_faces(monkeypatch):
    """Every thread's detector finds _photo_faces.FACE_BOXES in photos of PHOTO_SHAPE."""
    monkeypatch.setattr(registry, "default_detector", lambda name=None: _photo_faces.FixedFaces())


def _decoded(path):
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)


def test_every_face_is_edited_at_the_photos_size_and_nothing_else(exported, fixed_faces,
                                                                   tmp_path):
    folder = tmp_path / "photos"
    photo = _photo_faces.group_photo()
    imageio.write_image(folder / "group.png", photo)
    imageio.write_image(folder / "sub" / "group.jpg", photo)
    imageio.write_image(folder / "flat.png", np.full((*_photo_faces.PHOTO_SHAPE[::-1], 3), 90,
                                                     np.uint8))  # Other shape: no face.
    report = perturb.perturb_folder(exported, folder, tmp_path / "out", batch_size=3)
    assert report["output"] == "photo"
    assert report["counts"] == {"perturbed": 2, "no_face": 1}
    entry = report["files"]["group.png"]
    assert entry["faces"] == 2 and len(entry["male_scores"]) == 2
    assert entry["male_score"] == entry["male_scores"][0]
    assert report["files"]["flat.png"]["status"] == "no_face"
    assert not (tmp_path / "out" / "flat.png").exists()  # An unedited photo is not passed on.
    written = imageio.read_image(tmp_path / "out" / "group.png")
    assert written.shape == photo.shape
    outside = _photo_faces.outside_boxes(photo.shape, _photo_faces.FACE_BOXES, MARGIN)
    np.testing.assert_array_equal(written[outside], photo[outside])  # PNG in, PNG out.
    changed = np.any(written != photo, axis=2)
    for x, y, width, height in _photo_faces.FACE_BOXES:
        assert changed[y:y + height, x:x + width].mean() > 0.5
    jpeg = imageio.read_image(tmp_path / "out" / "sub" / "group.jpg")
    assert jpeg.shape == photo.shape
    assert (tmp_path / "out" / "sub" / "group.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    saved = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert saved["files"]["group.png"]["faces"] == 2


def test_max_faces_keeps_the_largest(exported, fixed_faces, tmp_path):
    folder = tmp_path / "photos"
    photo = _photo_faces.group_photo()
    imageio.write_image(folder / "group.png", photo)
    report = perturb.perturb_folder(exported, folder, tmp_path / "out", max_faces=1)
    assert report["files"]["group.png"]["faces"] == 1
    written = imageio.read_image(tmp_path / "out" / "group.png")
    x, y, width, height = _photo_faces.FACE_BOXES[1]  # The smaller face is left alone.
    np.testing.assert_array_equal(written[y:y + height, x:x + width],
                                  photo[y:y + height, x:x + width])


def test_metadata_is_dropped_by_default_and_kept_on_request(exported, fixed_faces, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    # Orientation 6 turns the stored 240x160 pixels into the 160x240 photo with the faces.
    stored = np.ascontiguousarray(np.rot90(_photo_faces.group_photo(), k=1))
    jpeg = _photo_faces.jpeg_with_metadata(imageio.encode_image("x.jpg", stored), orientation=6)
    (folder / "a.jpg").write_bytes(jpeg)
    png = _photo_faces.png_with_text(imageio.encode_image("x.png", _photo_faces.group_photo()))
    (folder / "b.png").write_bytes(png)
    assert imageio.read_image(folder / "a.jpg").shape[:2] == _photo_faces.PHOTO_SHAPE
    dropped = perturb.perturb_folder(exported, folder, tmp_path / "dropped", jpeg_quality=40)
    kept = perturb.perturb_folder(exported, folder, tmp_path / "kept", keep_metadata=True)
    assert dropped["counts"] == kept["counts"] == {"perturbed": 2}
    private = (_photo_faces.SERIAL, _photo_faces.COMMENT, _photo_faces.XMP, b"Exif",
               b"THUMBNAIL")
    for name in ("a.jpg", "b.png"):
        data = (tmp_path / "dropped" / name).read_bytes()
        assert not any(secret in data for secret in private), name
    # The colour profile stays, for the colours; the index of appended images never does.
    assert _photo_faces.ICC in (tmp_path / "dropped" / "a.jpg").read_bytes()
    assert _photo_faces.MPF not in (tmp_path / "kept" / "a.jpg").read_bytes()
    kept_jpeg = (tmp_path / "kept" / "a.jpg").read_bytes()
    # --jpeg_quality: 40 against the default 95 (the kept metadata is a few hundred bytes).
    assert (tmp_path / "dropped" / "a.jpg").stat().st_size < 0.7 * len(kept_jpeg)
    assert _photo_faces.SERIAL in kept_jpeg and _photo_faces.XMP in kept_jpeg
    assert _photo_faces.COMMENT in kept_jpeg and b"THUMBNAIL" not in kept_jpeg
    assert _photo_faces.COMMENT in (tmp_path / "kept" / "b.png").read_bytes()
    # Written upright, the orientation says so: both read as the photo's 160x240.
    for out in ("dropped", "kept"):
        assert imageio.read_image(tmp_path / out / "a.jpg").shape[:2] == _photo_faces.PHOTO_SHAPE


def test_options_that_do_not_go_together_are_refused(exported, tmp_path):
    folder = tmp_path / "photos"
    imageio.write_image(folder / "a.png", _photo_faces.group_photo())
    for kwargs, message in [({"output": "photo", "align": False}, "needs faces"),
                            ({"output": "crop", "keep_metadata": True}, "photo output only"),
                            ({"output": "thumbnail"}, "output must be"),
                            ({"max_faces": 0}, "max_faces"), ({"jpeg_quality": 101}, "1..100")]:
        with pytest.raises(ValueError, match=message):
            perturb.perturb_folder(exported, folder, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# Files that are hard to write back.


def test_hard_files_get_a_correct_output_or_their_own_entry(exported, fixed_faces, tmp_path):
    PIL = pytest.importorskip("PIL.Image", reason="Pillow not installed (it writes CMYK and APNG)")
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = _photo_faces.group_photo()
    height, width = photo.shape[:2]
    buffer = io.BytesIO()
    PIL.fromarray(photo).convert("CMYK").save(buffer, "JPEG", quality=95)
    (folder / "cmyk.jpg").write_bytes(_photo_faces.jpeg_with_icc(buffer.getvalue()))
    # 16 bits that 8 would lose: each column adds its own low bits.
    low_bits = (np.arange(width, dtype=np.uint32) % 200)[None, :, None]
    deep = np.minimum(photo.astype(np.uint32) * 257 + low_bits, 65535).astype(np.uint16)[:, :, ::-1]
    cv2.imwrite(str(folder / "deep.png"), np.ascontiguousarray(deep))
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(folder / "gray.png"), gray)
    cv2.imwrite(str(folder / "gray.jpg"), gray)
    alpha = np.dstack([photo[:, :, ::-1], np.linspace(0, 255, width, dtype=np.uint8)[None, :]
                       .repeat(height, axis=0)])
    cv2.imwrite(str(folder / "alpha.png"), alpha)
    frames = [PIL.fromarray(photo), PIL.fromarray(255 - photo)]
    frames[0].save(folder / "animated.png", save_all=True, append_images=frames[1:])
    (folder / "clip.gif").write_bytes(b"GIF89a")  # Not a format semiadv reads: listed.
    output = tmp_path / "out"
    report = perturb.perturb_folder(exported, folder, output)
    files = report["files"]
    assert sorted(files) == ["alpha.png", "animated.png", "clip.gif", "cmyk.jpg", "deep.png",
                             "gray.jpg", "gray.png"]
    assert files["animated.png"]["status"] == "unsupported"
    assert str(folder / "animated.png") in files["animated.png"]["error"]
    assert "animated PNG" in files["animated.png"]["error"]
    assert not (output / "animated.png").exists()
    assert files["clip.gif"]["status"] == "unsupported"
    assert str(folder / "clip.gif") in files["clip.gif"]["error"]
    assert "GIF is not read" in files["clip.gif"]["error"]
    assert report["failed"] == ["animated.png", "clip.gif"]
    outside = _photo_faces.outside_boxes(photo.shape, _photo_faces.FACE_BOXES, MARGIN)
    # CMYK: an RGB JPEG of the same size, said in the entry.
    assert files["cmyk.jpg"]["note"] == "CMYK JPEG, written back as RGB"
    assert imageio.read_image(output / "cmyk.jpg").shape == photo.shape
    assert _photo_faces.ICC not in (output / "cmyk.jpg").read_bytes()  # A CMYK profile.
    # 16 bits stay 16 bits, untouched outside the faces.
    written = _decoded(output / "deep.png")
    assert written.dtype == np.uint16 and written.shape == deep.shape
    np.testing.assert_array_equal(written[outside], deep[outside])
    assert np.any(written[~outside] != deep[~outside])
    # Gray stays gray; PNG bit-identical outside the faces.
    assert _decoded(output / "gray.png").shape == gray.shape
    np.testing.assert_array_equal(_decoded(output / "gray.png")[outside], gray[outside])
    assert _decoded(output / "gray.jpg").shape == gray.shape
    # Alpha is kept exactly; the colours outside the faces too.
    written = _decoded(output / "alpha.png")
    assert written.shape == alpha.shape
    np.testing.assert_array_equal(written[:, :, 3], alpha[:, :, 3])
    np.testing.assert_array_equal(written[outside], alpha[outside])


def test_a_face_at_the_photos_edge_is_edited_inside_the_photo(exported, monkeypatch, tmp_path):
    boxes = [(-30, 20, 80, 80), (200, 110, 60, 60)]  # Cut by the left and by the bottom right.
    monkeypatch.setattr(registry, "default_detector",
                        lambda name=None: _photo_faces.FixedFaces(boxes))
    folder = tmp_path / "photos"
    photo = _photo_faces.group_photo(boxes=boxes)
    imageio.write_image(folder / "edge.png", photo)
    report = perturb.perturb_folder(exported, folder, tmp_path / "out")
    assert report["files"]["edge.png"]["faces"] == 2
    written = imageio.read_image(tmp_path / "out" / "edge.png")
    assert written.shape == photo.shape
    outside = _photo_faces.outside_boxes(photo.shape, boxes, MARGIN)
    np.testing.assert_array_equal(written[outside], photo[outside])
    changed = np.any(written != photo, axis=2)
    assert changed[40:80, :20].mean() > 0.5 and changed[140:, 220:].mean() > 0.5


def test_a_failed_write_is_reported_and_the_other_photos_are_kept(exported, fixed_faces,
                                                                  tmp_path):
    folder = tmp_path / "photos"
    for name in ("a.png", "b.png", "c.png"):
        imageio.write_image(folder / name, _photo_faces.group_photo())
    output = tmp_path / "out"
    (output / "b.png").mkdir(parents=True)  # A folder where the photo should go.
    report = perturb.perturb_folder(exported, folder, output, batch_size=2)
    assert report["counts"] == {"perturbed": 2, "write_failed": 1}
    assert "b.png" in report["files"]["b.png"]["error"]
    assert (output / "a.png").is_file() and (output / "c.png").is_file()


def test_process_pool_writes_the_photos_threads_write(exported, shared_faces, tmp_path):
    pytest.importorskip("semiadv.align.face", reason="semiadv.align.face (face detection) not available")
    sources = sorted((shared_faces / "celeba_identities").glob("*/*.jpg"))[:30:10]
    if not sources:
        pytest.skip(f"no CelebA photos in {shared_faces / 'celeba_identities'}")
    folder = tmp_path / "real"
    folder.mkdir()
    for source in sources:  # Copied into tmp only, never into the repo.
        shutil.copy(source, folder / f"{source.parent.name}_{source.name}")
    imageio.write_image(folder / "flat.png", np.full((64, 64, 3), 128, np.uint8))
    reports = {pool: perturb.perturb_folder(exported, folder, tmp_path / pool, pool=pool,
                                            workers=1, save_aligned=True)
               for pool in ("thread", "process")}
    assert reports["process"]["files"] == reports["thread"]["files"]
    assert reports["process"]["counts"]["perturbed"] >= 2
    for name, entry in reports["process"]["files"].items():
        if entry["status"] != "perturbed":
            continue
        written = (tmp_path / "process" / name).read_bytes()
        assert written == (tmp_path / "thread" / name).read_bytes()
        assert imageio.read_image(tmp_path / "process" / name).shape == \
            imageio.read_image(folder / name).shape
        assert (tmp_path / "process" / "aligned" / perturb.aligned_face_name(name, 0)).is_file()


def test_edit_photo_over_a_rest_api_gives_the_folders_photo(exported, fixed_faces, tmp_path):
    """docs/serving.md's TF Serving client, against a stand-in for TF Serving's REST API."""
    import http.server
    import threading
    import urllib.request

    import tensorflow as tf

    from semiadv.perturb import photo as photo_lib

    signature = tf.saved_model.load(str(exported)).signatures["opposite"]
    requests = []

    class Predict(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802  The http.server API.
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((self.path, body["signature_name"], len(body["instances"])))
            images = np.array([instance["image"] for instance in body["instances"]], np.float32)
            outputs = signature(image=tf.constant(images))
            predictions = [{"perturbed": image.tolist(), "male_score": float(score)}
                           for image, score in zip(outputs["perturbed"].numpy(),
                                                   outputs["male_score"].numpy())]
            data = json.dumps({"predictions": predictions}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Predict)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/models/demo:predict"

    def opposite_over_rest(crops):  # As in docs/serving.md.
        body = json.dumps({"signature_name": "opposite",
                           "instances": [{"image": crop.tolist()} for crop in crops]})
        request = urllib.request.Request(url, body.encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            predictions = json.load(response)["predictions"]
        return np.array([p["perturbed"] for p in predictions], np.float32)

    try:
        rgb = _photo_faces.group_photo()
        edited, faces = photo_lib.edit_photo(rgb, opposite_over_rest, image_size=SIZE)
    finally:
        server.shutdown()
    assert requests == [("/v1/models/demo:predict", "opposite", 2)]  # One request per photo.
    assert len(faces) == 2
    folder = tmp_path / "photos"
    imageio.write_image(folder / "group.png", rgb)
    perturb.perturb_folder(exported, folder, tmp_path / "out")
    written = imageio.read_image(tmp_path / "out" / "group.png")
    assert np.abs(written.astype(int) - edited.astype(int)).max() <= 1
    assert np.any(edited != rgb)


def test_workers_prepare_photos_without_importing_tensorflow(tmp_path):
    import functools

    import _photo_faults
    from semiadv.perturb import photoprep
    from semiadv.utils import parallel

    name = registry.default_detector_name()
    imageio.write_image(tmp_path / "a.png", _photo_faces.group_photo())
    step = functools.partial(_photo_faults.heavy_modules_after_faces, size=SIZE, max_faces=4,
                             keep_metadata=True, detector_name=name)
    modules = parallel.process_map(step, [tmp_path / "a.png"], workers=1,
                                   initializer=photoprep.start_worker, initargs=(name,))
    assert list(modules) == [[]]  # After decoding, detecting and extracting metadata.
