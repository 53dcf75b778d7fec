"""semiadv-evaluate end to end on a SAN trained at 16x16."""

import json
import logging

import pytest

from semiadv.config import DataConfig, NetworkConfig, StageConfig, TrainConfig
from semiadv.evaluation import evaluate
from semiadv.evaluation.attackers import AttackerConfig
from semiadv.evaluation.attribute_readers import AttributeConfig
from semiadv.evaluation.attribute_section import NO_CHOICES_NOTE
from semiadv.evaluation.config import EvaluationConfig
from semiadv.evaluation.foreign import ForeignConfig
from semiadv.evaluation.independent import IndependentConfig
from semiadv.train import main_job


_DATA = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8,
                   synthetic_identities=60, synthetic_images_per_identity=4)
_TINY = IndependentConfig(stage=StageConfig(steps=4, learning_rate=1e-3), width=0.125,
                          embedding_dim=8)
_TINY_FOREIGN = ForeignConfig(hog_size=16, hog_steps=20, cnn_size=16, cnn_steps=4,
                              cnn_batch_size=8, cnn_width=0.25)
# The CNN family (not the default) for its Keras cache; HOG's numbers are in test_attackers.py.
_TINY_ATTACKERS = AttackerConfig(adaptive_family="cnn", adaptive_steps=4, adaptive_examples=64,
                                 probe_examples=96, probe_test_examples=14, probe_steps=20)

_TINY_ATTRIBUTES = AttributeConfig(cnn=True, hog_size=16, hog_steps=20, cnn_size=16, cnn_steps=4,
                                   cnn_batch_size=8, cnn_width=0.25)


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
    summary = main_job.run(config)
    return root, summary["export"]


def _config(root, export, output, **overrides):
    settings = dict(data=_DATA, workdir=str(root / "work"), eval_workdir=str(root / "eval_work"),
                    independent_gender=_TINY, independent_matcher=_TINY, entry_points=False,
                    foreign=_TINY_FOREIGN, attackers=_TINY_ATTACKERS,
                    attributes=_TINY_ATTRIBUTES)
    return EvaluationConfig(export=export, output_dir=str(root / output),
                                         **{**settings, **overrides})


def test_end_to_end_writes_tables_plots_and_grid(trained, plugin_module, caplog):
    root, export = trained
    result = evaluate.evaluate(
        _config(root, export, "out", evaluators=(f"{plugin_module}:make_gender",
                                                 f"{plugin_module}:make_matcher")))
    out = root / "out"
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["conditions"] == ["original", "same", "neutral", "opposite", "blur",
                                    "pixelate"]
    assert set(stored["gender"]) == {"auxiliary CNN", "independent ResNet",
                                     "HOG + logistic regression 16px",
                                     "separable CNN 16px, augmented", "brightness"}
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
    # Seen: the auxiliary networks; sibling: the independent ones; foreign: the plug-ins.
    assert [name for name, entry in {**stored["gender"], **matching["matchers"]}.items()
            if entry["seen"]] == ["auxiliary CNN", "auxiliary matcher"]
    assert {name: entry["relation"] for name, entry in
            {**stored["gender"], **matching["matchers"]}.items()} == {
        "auxiliary CNN": "seen", "auxiliary matcher": "seen", "independent ResNet": "sibling",
        "independent ResNet matcher": "sibling", "brightness": "foreign",
        "raw pixels": "foreign", "HOG + logistic regression 16px": "foreign",
        "separable CNN 16px, augmented": "foreign"}
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
    assert ("| gender classifier | relation to the SAN | original | SM | NT | OP | "
            "blur (sigma=") in text
    assert "| matcher | relation to the SAN | original | SM | NT | OP |" in text
    assert "| auxiliary CNN (auxiliary) | seen |" in text
    assert "| independent ResNet (independent) | sibling |" in text
    assert "| raw pixels (plug-in) | **foreign** |" in text
    assert "## Fidelity against the original" in text and "| ΔE*ab |" in text
    assert stored["identity_fidelity"] == {} and "The same on the photos of" not in text
    for file in stored["files"]:
        assert (out / file).stat().st_size > 0, file
    # The attackers: the adaptive one and its reference, a probe per matcher with the
    # matcher's relation; reported in their own section, not in the gender tables.
    attackers = stored["attackers"]
    adaptive = attackers["adaptive"]
    assert adaptive["family"] == "cnn" and 0 < adaptive["training_faces"] <= 64
    assert {name: (entry["relation"], entry["trained_on"])
            for name, entry in adaptive["classifiers"].items()} == {
        "separable CNN 16px, trained on OP outputs": ("adaptive", "opposite"),
        "separable CNN 16px, trained on originals": ("sibling", "original")}
    assert attackers["linear_probes"]["test_faces"] == 14
    probes = attackers["linear_probes"]["probes"]
    assert {name: entry["relation"] for name, entry in probes.items()} == {
        "linear probe on auxiliary matcher": "seen",
        "linear probe on independent ResNet matcher": "sibling",
        "linear probe on raw pixels": "foreign"}
    scored = [(entry, {"original", "same", "opposite"}) for entry in probes.values()]
    scored += [(entry, {"original", "same", "neutral", "opposite"})
               for entry in adaptive["classifiers"].values()]
    for entry, conditions in scored:
        assert set(entry["conditions"]) == conditions
        for values in entry["conditions"].values():
            assert 0 <= values["error_rate"] <= 1 and 0 <= values["auc"] <= 1
    assert not set(probes) & set(stored["gender"])
    attackers_text = text[text.index("## Attackers"):]
    assert "**Adaptive attacker:**" in attackers_text and "**Linear probes:**" in attackers_text
    assert "| separable CNN 16px, trained on OP outputs | adaptive |" in attackers_text
    assert "| linear probe on raw pixels | **foreign** |" in attackers_text
    assert "trained on OP" not in text[:text.index("## Attackers")]
    # A gender export: its own choices are scored by the attribute readers, and said to be all.
    attributes = stored["attributes"]
    assert attributes["note"] == NO_CHOICES_NOTE
    assert set(attributes["choices"]) == {"original", "same", "neutral", "opposite"}
    assert [entry["family"] for entry in attributes["readers"].values()] == ["hog", "cnn"]
    assert attributes["matchers"] and attributes["gender_classifiers"]
    for choice, entry in attributes["choices"].items():
        for values in entry["readers"].values():
            assert 0 <= values["race_balanced_accuracy"] <= 1 and values["age_mae"] >= 0
        assert set(entry["identity"]) == set(attributes["matchers"])
        assert choice == "original" or entry["targets"]
    assert "## What each choice hides and keeps" in text and NO_CHOICES_NOTE in text
    assert (out / "grid.png").exists()  # Synthetic: the grid is on by default.
    assert len(list(out.glob("roc_*.png"))) == 8

    # A rerun reuses the cached independent networks and can leave the grid out. With an
    # identity dataset (here the same synthetic test split) fidelity is reported on its
    # photos too.
    cached = sorted((root / "eval_work").glob("independent_*/model.keras"))
    assert len(cached) == 2
    cached += sorted((root / "eval_work").glob("foreign_*/model.*"))
    assert len(cached) == 4
    stamps = [path.stat().st_mtime_ns for path in cached]
    caplog.set_level(logging.INFO, logger="absl")
    evaluate.evaluate(_config(root, export, "again", save_grid=False, baselines=False,
                                  workdir=None, identity_dataset="synthetic"))
    assert [path.stat().st_mtime_ns for path in cached] == stamps
    assert "training 4 steps" not in caplog.text
    assert not (root / "again" / "grid.png").exists()
    again = json.loads((root / "again" / "metrics.json").read_text())
    assert "blur" not in again["conditions"] and set(again["gender"]) == {
        "independent ResNet", "HOG + logistic regression 16px", "separable CNN 16px, augmented"}
    assert "foreign CNN: cached" in caplog.text
    assert "separable CNN 16px, trained on OP outputs: cached" in caplog.text
    assert again["attackers"]["adaptive"]["classifiers"] == \
        stored["attackers"]["adaptive"]["classifiers"]
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
        evaluate.evaluate(config)
    assert not (root / "bad").exists()
