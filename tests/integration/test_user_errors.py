"""The catalogue of user mistakes: every binary refuses each before any work, in one line.

Each case runs a binary in a subprocess (as a user would) and asserts exit code 2, stderr
naming the value at fault, no traceback, and nothing created (no work dir, no output
folder). A handful run by default; the rest are marked slow (each subprocess imports
TensorFlow: seconds apiece).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
UTK_NAMES = "<age>_<gender>_<race>_<date>.jpg.chip.jpg"

# (binary module, arguments, what stderr must say, path that must not be created).
# In arguments and paths: {tmp} is the test's folder, which holds empty/ (no photos),
# photos/ (one image), a_file (a regular file), broken_export/ (a saved_model.pb that is not
# one) and nothing else.
DEFAULT = {
    "dataset_folder_missing": (
        "train_main", ["--dataset=folder:/nonexistent", "--workdir={tmp}/w"],
        "--dataset=folder:/nonexistent: folder /nonexistent does not exist", "{tmp}/w"),
    "utkface_folder_empty": (
        "train_main", ["--dataset=utkface:{tmp}/empty", "--workdir={tmp}/w"],
        UTK_NAMES, "{tmp}/w"),
    "image_size_not_multiple": (
        "train_main", ["--image_size=33", "--workdir={tmp}/w"],
        "--image_size=33 is not a multiple of 4", "{tmp}/w"),
    "perturb_output_is_input": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/photos",
                         "--output_dir={tmp}/photos"],
        "--output_dir={tmp}/photos is the input folder", None),
    "evaluate_export_without_model": (
        "evaluate_main", ["--export={tmp}/empty", "--output_dir={tmp}/eval"],
        "--export={tmp}/empty: no model there", "{tmp}/eval"),
    "perturb_export_not_a_saved_model": (
        "perturb_main", ["--export={tmp}/broken_export", "--input_dir={tmp}/photos",
                         "--output_dir={tmp}/out"],
        "--export={tmp}/broken_export: {tmp}/broken_export/saved_model.pb is not a SavedModel",
        "{tmp}/out"),
    "evaluate_gender_classifier_missing": (
        "evaluate_main", ["--export={tmp}/empty", "--output_dir={tmp}/eval",
                          "--gender_classifier={tmp}/nowhere.keras?size=96"],
        "--gender_classifier={tmp}/nowhere.keras?size=96: gender classifier model "
        "'{tmp}/nowhere.keras' does not exist", "{tmp}/eval"),
    "evaluate_gender_classifier_bad_setting": (
        "evaluate_main", ["--export={tmp}/empty", "--output_dir={tmp}/eval",
                          "--gender_classifier={tmp}/a_file?colour=CMYK"],
        "colour='CMYK'", "{tmp}/eval"),
    "perturb_photo_output_without_alignment": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/photos",
                         "--output_dir={tmp}/out", "--noalign", "--output=photo"],
        "--output=photo needs faces found", "{tmp}/out"),
    "pretrain_negative_steps": (
        "pretrain_main", ["--net=gender", "--gender_steps=-1", "--workdir={tmp}/w"],
        "--gender_steps=-1", "{tmp}/w"),
}
SLOW = {
    "no_identity_term": (
        "train_main", ["--nomatch_same", "--nomatch_opposite", "--workdir={tmp}/w"],
        "match_same and match_opposite are both off", "{tmp}/w"),
    "export_workdir_without_model": (
        "export_main", ["--workdir={tmp}/empty", "--export_dir={tmp}/exports"],
        "--workdir={tmp}/empty: not a finished training work dir", "{tmp}/exports"),
    "export_edit_strength_zero": (
        "export_main", ["--workdir={tmp}/empty", "--export_dir={tmp}/exports",
                        "--edit_strength=0"],
        "--edit_strength must be > 0", "{tmp}/exports"),
    "perturb_export_without_model": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/photos",
                         "--output_dir={tmp}/out"],
        "--export={tmp}/empty: no model there", "{tmp}/out"),
    "perturb_keep_metadata_of_crops": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/photos",
                         "--output_dir={tmp}/out", "--output=crop", "--keep_metadata"],
        "--keep_metadata applies to --output=photo only", "{tmp}/out"),
    "prototypes_unknown_attribute": (
        "prototypes_main", ["--attributes=gender,sex", "--workdir={tmp}/w"],
        "sex", "{tmp}/w"),
    "perturb_bad_prototype": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/photos",
                         "--output_dir={tmp}/out", "--prototype=male"],
        "--prototype", "{tmp}/out"),
    "perturb_input_missing": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/nowhere",
                         "--output_dir={tmp}/out"],
        "--input_dir={tmp}/nowhere: does not exist", "{tmp}/out"),
    "perturb_input_empty": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/empty",
                         "--output_dir={tmp}/out"],
        "--input_dir={tmp}/empty: no photos in it", "{tmp}/out"),
    "perturb_input_inside_output": (
        "perturb_main", ["--export={tmp}/empty", "--input_dir={tmp}/photos",
                         "--output_dir={tmp}"],
        "--input_dir={tmp}/photos is inside --output_dir={tmp}", None),
    "align_input_missing": (
        "align_main", ["--input_dir={tmp}/nowhere", "--output_dir={tmp}/out"],
        "--input_dir={tmp}/nowhere: does not exist", "{tmp}/out"),
    "align_input_dir_unset": (
        "align_main", ["--output_dir={tmp}/out"], "--input_dir", "{tmp}/out"),
    "evaluator_malformed": (
        "evaluate_main", ["--export={tmp}/empty", "--output_dir={tmp}/eval",
                          "--evaluator=mymatcher"],
        "--evaluator=mymatcher: expected module:factory", "{tmp}/eval"),
    "evaluator_module_missing": (
        "evaluate_main", ["--export={tmp}/photos", "--output_dir={tmp}/eval",
                          "--evaluator=no_such_module_xyz:make"],
        "--evaluator=no_such_module_xyz:make: no module 'no_such_module_xyz'", "{tmp}/eval"),
    "train_tf_config_not_json": (
        "train_main", ["--workdir={tmp}/w", "--strategy=multi_worker", "TF_CONFIG={{not json"],
        "TF_CONFIG='{{not json' is not valid JSON", "{tmp}/w"),
    "train_multi_worker_without_cluster": (
        "train_main", ["--workdir={tmp}/w", "--strategy=multi_worker"],
        "--strategy=multi_worker needs TF_CONFIG", "{tmp}/w"),
    "train_workdir_under_a_file": (
        "train_main", ["--workdir={tmp}/a_file/w"], "--workdir={tmp}/a_file/w", None),
    "train_filters_unequal": (
        "train_main", ["--workdir={tmp}/w", "--encoder_filters=8,12,16",
                       "--decoder_filters=8,8"],
        "--encoder_filters=8,12,16 and --decoder_filters=8,8 must be equally long", "{tmp}/w"),
    "train_filters_not_integers": (
        "train_main", ["--workdir={tmp}/w", "--encoder_filters=8,wide"],
        "--encoder_filters=8,wide", "{tmp}/w"),
    "train_image_size_for_three_blocks": (
        "train_main", ["--workdir={tmp}/w", "--image_size=36", "--encoder_filters=4,4,4",
                       "--decoder_filters=4,4,4"],
        "--image_size=36 is not a multiple of 8", "{tmp}/w"),
    "train_mixed_precision_unknown": (
        "train_main", ["--workdir={tmp}/w", "--mixed_precision=fp16"],
        "--mixed_precision", "{tmp}/w"),
    "train_dataset_spec_unknown": (
        "train_main", ["--workdir={tmp}/w", "--dataset=imagenet"],
        "unknown dataset spec 'imagenet'", "{tmp}/w"),
    "train_matcher_dataset_missing": (
        "train_main", ["--workdir={tmp}/w", "--matcher_dataset=folder:{tmp}/nowhere"],
        "--matcher_dataset=folder:{tmp}/nowhere", "{tmp}/w"),
    "train_retrain_from_unknown": (
        "train_main", ["--workdir={tmp}/w", "--retrain_from=decoder"],
        "unknown stage 'decoder'", "{tmp}/w"),
    "pretrain_member_beyond_ensemble": (
        "pretrain_main", ["--workdir={tmp}/w", "--net=gender_3", "--gender_ensemble=1"],
        "--gender_ensemble >= k", "{tmp}/w"),
    "prototypes_output_not_npz": (
        "prototypes_main", ["--output={tmp}/p.txt"], "--output={tmp}/p.txt: must be a .npz",
        "{tmp}/p.txt"),
    "evaluate_max_examples_one": (
        "evaluate_main", ["--export={tmp}/empty", "--output_dir={tmp}/eval",
                          "--max_examples=1"],
        "max_examples must be at least 2", "{tmp}/eval"),
    "evaluate_training_flag_on_command_line": (
        "evaluate_main", ["--export={tmp}/empty", "--output_dir={tmp}/eval", "--san_steps=3"],
        "Unknown command line flag 'san_steps'", "{tmp}/eval"),
}


def _run(module, args, tmp, extra_env=None):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": "",
           **(extra_env or {})}
    env.pop("TF_CONFIG", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # Whatever the test session set: the binaries'.
    if not extra_env:
        env.pop("SEMIADV_VERBOSE", None)
    env.pop("SLURM_PROCID", None)
    argv = []
    for arg in args:
        arg = arg.format(tmp=tmp)
        if arg.startswith("TF_CONFIG="):
            env["TF_CONFIG"] = arg.partition("=")[2]
        else:
            argv.append(arg)
    return subprocess.run([sys.executable, "-m", f"semiadv.apps.{module}", *argv],
                          capture_output=True, text=True, timeout=300, cwd=tmp, env=env)


def _catalogue_case(tmp_path, module, args, expected, must_not_exist):
    (tmp_path / "empty").mkdir()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "face.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "a_file").write_text("a file, not a folder\n")
    (tmp_path / "broken_export").mkdir()
    (tmp_path / "broken_export" / "saved_model.pb").write_bytes(b"\xff\xff not a SavedModel")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _run(module, args, tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    binary = "semiadv-" + module.removesuffix("_main")
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{binary}: error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert expected.format(tmp=tmp_path) in errors[0], errors[0]
    if must_not_exist:
        assert not Path(must_not_exist.format(tmp=tmp_path)).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # Nothing created.
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["face.png"]


@pytest.mark.parametrize("case", sorted(DEFAULT))
def test_user_error(tmp_path, case):
    _catalogue_case(tmp_path, *DEFAULT[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW))
def test_user_error_slow(tmp_path, case):
    _catalogue_case(tmp_path, *SLOW[case])


def test_verbose_is_opt_in(tmp_path):
    """Quiet by default: no CUDA probing lines; SEMIADV_VERBOSE=1 brings TensorFlow's back."""
    args = ["--image_size=33", "--workdir={tmp}/w"]
    quiet = _run("train_main", args, tmp_path)
    assert quiet.returncode == 2
    assert quiet.stderr.strip().count("\n") == 0, quiet.stderr  # The error line alone.
    loud = _run("train_main", args, tmp_path, extra_env={"SEMIADV_VERBOSE": "1"})
    assert loud.returncode == 2
    assert len(loud.stderr.strip().splitlines()) > 1, loud.stderr  # TensorFlow's lines too.


@pytest.mark.parametrize("setting, enabled", [(None, True), ("0", False)])
def test_binaries_prefer_onednn_unless_told_not_to(setting, enabled):
    """TensorFlow enables oneDNN itself only on AVX-512 VNNI/BF16 or AMX CPUs; the binaries
    ask for it everywhere (BENCHMARKS.md §2b), and an explicit 0 wins."""
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = ("import os, semiadv.apps.cli; "
            "from tensorflow.python.util import _pywrap_util_port as port; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(REPO_ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [setting or "1", str(enabled)]

