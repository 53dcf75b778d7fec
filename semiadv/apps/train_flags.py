"""Training flags (on top of the shared data flags), turned into a `TrainConfig`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from absl import flags

from semiadv.apps import common_flags
from semiadv.config import (ATTRIBUTE_HIDDEN_TARGETS, MIXED_PRECISION, STRATEGIES, NetworkConfig,
                            StageConfig, TrainConfig)
from semiadv.errors import UserValueError

STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", list(STRATEGIES),
    "auto: MirroredStrategy over the GPUs (or the CPU); mirrored; multi_worker "
    "(MultiWorkerMirroredStrategy from TF_CONFIG); one_device.")
ENCODER_FILTERS = flags.DEFINE_list(
    "encoder_filters", ["8", "12"],
    "Autoencoder encoder widths (the paper: 8,12), one block each; every block halves the "
    "image, so --image_size must be a multiple of 2**(number of blocks).")
DECODER_FILTERS = flags.DEFINE_list("decoder_filters", ["256", "128"],
                                    "Autoencoder decoder widths (the paper: 256,128), as many "
                                    "as --encoder_filters.")
RESIDUAL = flags.DEFINE_boolean(
    "residual", False,
    "Skip connection from the input: the autoencoder outputs a change added to the face, "
    "X' = clip(X + tanh(.)), instead of re-synthesising it through the bottleneck (the "
    "paper's). Keeps the detail face matchers use; see RESULTS.md.")
UPSAMPLING = flags.DEFINE_enum(
    "upsampling", "nearest", ["nearest", "bilinear"],
    "Interpolation of the autoencoder decoder's upsampling (the paper: nearest, which leaves "
    "a 2x2 block texture in the output; bilinear is smooth).")
MAX_CHANGE = flags.DEFINE_float(
    "max_change", 1.0,
    "With --residual: the largest change the autoencoder may make to a pixel's channel, "
    "X' = clip(X + max_change * tanh(.)); bounds what the SAN can paint on a face (1: no "
    "bound).", lower_bound=1e-3, upper_bound=1.0)
ENCODER_PROTOTYPE = flags.DEFINE_enum(
    "encoder_prototype", "same", ["same", "own", "difference"],
    "What the autoencoder's encoder sees beside the face: same (the paper's: the same-gender "
    "prototype, one decoded pass for both outputs, so X'_OP differs from X'_SM only by a fixed "
    "mix of the two prototypes), own (each output's own prototype: a face-specific change "
    "towards the other gender, twice the autoencoder's cost) or difference (like own, but each "
    "pass sees its prototype minus the same-gender one, zero for X'_SM: SM cannot learn "
    "'move towards this prototype').")
CLASSIFIER_WIDTH = flags.DEFINE_float("classifier_width", 1.0,
                                      "Width multiplier of the gender CNN.", lower_bound=0.01)
MATCHER_WIDTH = flags.DEFINE_float("matcher_width", 1.0, "Width multiplier of the matcher.",
                                   lower_bound=0.01)
EMBEDDING_DIM = flags.DEFINE_integer("embedding_dim", 128, "Matcher embedding size.",
                                     lower_bound=2)

_STAGE_DEFAULTS = TrainConfig()
STAGE_STEPS = {
    name: flags.DEFINE_integer(f"{name}_steps", getattr(_STAGE_DEFAULTS, name).steps,
                               f"Training steps of the {name} stage.", lower_bound=0)
    for name in ("gender", "matcher", "autoencoder", "san")}
STAGE_LEARNING_RATES = {
    name: flags.DEFINE_float(f"{name}_learning_rate",
                             getattr(_STAGE_DEFAULTS, name).learning_rate,
                             f"Adam learning rate of the {name} stage.", lower_bound=0.0)
    for name in ("gender", "matcher", "autoencoder", "san")}
GENDER_WEIGHT = flags.DEFINE_float("gender_weight", 1.0, "lambda_G of the SAN loss.",
                                   lower_bound=0.0)
MATCH_WEIGHT = flags.DEFINE_float("match_weight", 8.0, "lambda_M of the SAN loss.",
                                  lower_bound=0.0)
PIXEL_WEIGHT = flags.DEFINE_float("pixel_weight", 1.0, "lambda_D of the SAN loss.",
                                  lower_bound=0.0)
GENDER_SAME_WEIGHT = flags.DEFINE_float(
    "gender_same_weight", 1.0,
    "Weight of the X'_SM half of the gender term (1: the paper's CE(G(X'_SM), y); 0: the "
    "gender term acts on X'_OP only and X'_SM stays the face it was).", lower_bound=0.0)
GENDER_SAME_TARGET = flags.DEFINE_enum(
    "gender_same_target", "label", ["label", "original"],
    "What the X'_SM gender term holds X'_SM to: label (the paper's), the true gender, which "
    "also rewards an X'_SM reading more of its gender than the face; original, each "
    "classifier's reading of the face itself (KL): no more and no less of its gender.")
SSIM_WEIGHT = flags.DEFINE_float(
    "ssim_weight", 0.0,
    "Fidelity: weight of 1 - SSIM(X, X'_OP) in the SAN loss (0: the paper's loss).",
    lower_bound=0.0)
COLOUR_WEIGHT = flags.DEFINE_float(
    "colour_weight", 0.0,
    "Fidelity: weight of the mean CIELAB colour difference ΔE*ab(X, X'_OP) in the SAN loss "
    "(ΔE about 2.3 is just noticeable; 0: the paper's loss).", lower_bound=0.0)
COLOUR_TOLERANCE = flags.DEFINE_float(
    "colour_tolerance", 0.0,
    "Fidelity: ΔE*ab each pixel may change by before --colour_weight costs anything (the "
    "term is colour_weight x the mean over pixels of max(ΔE - tolerance, 0)); lets a "
    "residual autoencoder move off the identity at the start, which a plain ΔE term "
    "prevents, while a local colour patch still pays.", lower_bound=0.0)
GENDER_ENSEMBLE = flags.DEFINE_integer(
    "gender_ensemble", 0,
    "Ensemble SAN: extra frozen gender classifiers, beyond the paper's CNN, that the SAN is "
    "trained against (diverse architectures, widths, seeds and augmentations; each "
    "pre-trained in stage gender_<k> with --gender_steps and --gender_learning_rate). The "
    "gender loss is the mean over all of them.", lower_bound=0)
MEMBER_INPUT_SIZES = flags.DEFINE_list(
    "member_input_sizes", [],
    "Sides the extra gender classifiers (--gender_ensemble members and --flow_links' "
    "classifiers) read faces at, cycling with k (member k: entry (k-1) mod n), each network "
    "built for its side with the face resized to it inside (bilinear, antialiased), e.g. "
    "48,96 at --image_size=64. Empty: all read --image_size.")
MATCH_OPPOSITE = flags.DEFINE_boolean(
    "match_opposite", True, "Also pull M(X'_OP) towards M(X): the exported output is X'_OP.")
MATCH_SAME = flags.DEFINE_boolean(
    "match_same", True,
    "Pull M(X'_SM) towards M(X) (the paper's match term). --nomatch_same runs the matcher on "
    "X and X'_OP only (4/7 of its cost with --matcher=dlib_resnet) and holds X'_SM to the "
    "face by the pixel term alone.")
MATCH_WARMUP_STEPS = flags.DEFINE_integer(
    "match_warmup_steps", 0, "SAN steps before the matching term switches on.", lower_bound=0)
PIXEL_LOSS = flags.DEFINE_enum("pixel_loss", "l1", ["l1", "mse", "bce"],
                               "Pixel loss of the autoencoder pre-training and the SAN.")
TRIPLET_MARGIN = flags.DEFINE_float("triplet_margin", 0.2, "Triplet loss margin.",
                                    lower_bound=0.0)
TRIPLET_MINING = flags.DEFINE_enum("triplet_mining", "semi_hard", ["semi_hard", "hard"],
                                   "In-batch triplet mining.")
FLIP_AUGMENT = flags.DEFINE_boolean("flip_augment", True,
                                    "Flip faces (with their prototypes) while training.")
CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 200, "Steps between checkpoints.",
                                        lower_bound=1)
STEPS_PER_LOOP = flags.DEFINE_integer("steps_per_loop", 20,
                                      "Steps per compiled loop call between host-side checks.",
                                      lower_bound=1)
IMAGE_SUMMARIES = flags.DEFINE_boolean(
    "image_summaries", False, "Write face images to TensorBoard (off: this is a privacy tool).")
WARP_PROTOTYPES = flags.DEFINE_boolean(
    "warp_prototypes", False,
    "Where the dataset has landmarks (celeb_a), warp each face's prototypes onto its eyes, "
    "nose and mouth (the paper's per-image alignment).")
MATCHER_NETWORK = flags.DEFINE_enum(
    "matcher", "triplet", ["triplet", "dlib_resnet"],
    "The SAN's frozen face matcher: triplet (trained in the matcher stage) or dlib_resnet "
    "(dlib's face recognition ResNet converted to Keras on first use from the [dlib] extra, "
    "behind a fixed warp from our crops to dlib's chip; the matcher stage only converts it).")
MATCHER_FINETUNE = flags.DEFINE_boolean(
    "matcher_finetune", False,
    "With --matcher=dlib_resnet: fine-tune it with the triplet loss in the matcher stage "
    "(--matcher_steps, --matcher_learning_rate) instead of using dlib's weights as they are.")
MATCH_JITTER = flags.DEFINE_float(
    "match_jitter", None,
    "The match term compares X and X' under the same random shift and scale (up to this "
    "share of the side) and blur, so the SAN keeps identity other matchers read too. "
    "Default: 0.05 with --matcher=dlib_resnet, 0 (off) with triplet.",
    lower_bound=0.0, upper_bound=0.49)
GENDER_JITTER = flags.DEFINE_float(
    "gender_jitter", 0.0,
    "The gender term reads X'_SM and X'_OP under a random shift and scale (up to this share "
    "of the side) and blur, a fresh draw per classifier, so the gender edit survives other "
    "classifiers' alignment (transfers to unseen classifiers). 0: off, the paper's.",
    lower_bound=0.0, upper_bound=0.49)
GENDER_DIVERSITY = flags.DEFINE_float(
    "gender_diversity", 0.0,
    "Input diversity in the gender term: each classifier reads X'_SM and X'_OP through "
    "random transforms drawn per example, of this strength: colour jitter (brightness "
    "+-0.1s, contrast +-0.2s, saturation +-0.3s), a crop of up to 0.2s of the side resized "
    "back, Gaussian blur (sigma up to s x side / 40) and JPEG-like quantisation (quality "
    "down to 100 - 70s), all passing gradients, so the edit survives what other "
    "classifiers' inputs go through. 0: off, the paper's.", lower_bound=0.0, upper_bound=1.0)
GENDER_ROBUST_RADIUS = flags.DEFINE_float(
    "gender_robust_radius", 0.0,
    "Train the gender CNNs adversarially: each step on the faces within this L2 distance "
    "(whole image, [0, 1] pixel units; 1.0 at 64x64 RGB is 2.3/255 RMS) of the batch's that "
    "the CNN misreads most. The SAN must then edit gender cues to fool it, not paint patches "
    "only its own CNN reads. 0: off, the paper's. Costs ~1 training step per search step.",
    lower_bound=0.0)
GENDER_ROBUST_STEPS = flags.DEFINE_integer(
    "gender_robust_steps", 3,
    "Projected gradient steps of the search for --gender_robust_radius.", lower_bound=1)
GENDER_ROBUST_WARMUP = flags.DEFINE_integer(
    "gender_robust_warmup", 0,
    "Gender training steps over which --gender_robust_radius grows linearly from 0 (a CNN "
    "attacked at full radius from its random start can stay at chance). 0: full radius "
    "from the first step.", lower_bound=0)
FLOW_LINKS = flags.DEFINE_integer(
    "flow_links", 1,
    "Sequential SAN (FlowSAN): links in the chain. 1: one SAN (the paper's). K > 1: link k "
    "(stage san_<k>, --san_steps and --san_learning_rate each, started from the pre-trained "
    "autoencoder) is trained on the outputs of links 1..k-1 against its own auxiliary gender "
    "classifier, ensemble recipe gender_ensemble + k - 1 (another architecture, width, "
    "augmentation and seed; stage gender_<gender_ensemble + k - 1>, --gender_steps). The "
    "export applies the links in sequence. Raising it on a finished work dir trains only the "
    "new links.", lower_bound=1)
HIDE_ATTRIBUTES = flags.DEFINE_list(
    "hide_attributes", [],
    "Choice-conditioned SAN (PrivacyNet): the attributes a user may choose, per face, to hide "
    "or keep: gender (required when any is named), age_group, race, e.g. "
    "gender,age_group,race. Adds the auxiliary classifier stages age_group and race "
    "(--gender_steps each); the export takes the choice as an input (docs/serving.md). "
    "Empty: the gender SAN.")
ATTRIBUTE_WEIGHT = flags.DEFINE_float(
    "attribute_weight", 1.0,
    "Weight of the age_group and race terms of a choice-conditioned SAN (a hidden one's "
    "--attribute_hidden_target term, a kept one's reading change).", lower_bound=0.0)
ATTRIBUTE_HIDDEN_TARGET = flags.DEFINE_enum(
    "attribute_hidden_target", "chance", list(ATTRIBUTE_HIDDEN_TARGETS),
    "Where a choice-conditioned SAN pushes a hidden age group or race: chance (its auxiliary "
    "classifier reads no value) or other (towards another value, the face's own shifted by "
    "half the classes, as hiding gender flips it; on UTKFace it hid age as stripes under the "
    "eyes: RESULTS.md).")
ATTRIBUTE_ROBUST_RADIUS = flags.DEFINE_float(
    "attribute_robust_radius", 0.0,
    "Train the auxiliary age group and race classifiers adversarially, as "
    "--gender_robust_radius does the gender CNN: each step on the faces within this L2 "
    "distance of the batch's that the classifier misreads most, so the SAN must edit what "
    "people see, not paint patterns only its own classifiers read. 0: off.", lower_bound=0.0)
ATTRIBUTE_ROBUST_STEPS = flags.DEFINE_integer(
    "attribute_robust_steps", 3,
    "Projected gradient steps of the search for --attribute_robust_radius.", lower_bound=1)
ATTRIBUTE_GREY = flags.DEFINE_boolean(
    "attribute_grey", False,
    "The age group and race classifiers read only the face's luma (a fixed first layer), in "
    "their training and in the SAN's terms, so the SAN cannot fool them by tinting.")
MATCHER_DATASET = flags.DEFINE_string(
    "matcher_dataset", None,
    "Dataset spec the matcher learns identities from (default: --dataset), e.g. "
    "'folder:../shared/faces/celeba_identities?aligned=0' when --dataset has no identities. "
    "Same --image_size and --channels.")
flags.register_validator("matcher_dataset", lambda spec: spec is None or common_flags.valid_spec(spec))


def _filters(values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        return None


def _valid_autoencoder(values):
    """--encoder_filters/--decoder_filters are integers, as many, and fit --image_size."""
    encoder, decoder = _filters(values["encoder_filters"]), _filters(values["decoder_filters"])
    if encoder is None or decoder is None or not all(f > 0 for f in encoder + decoder):
        raise flags.ValidationError(
            f"--encoder_filters={','.join(values['encoder_filters'])} and --decoder_filters="
            f"{','.join(values['decoder_filters'])} must be positive integers, e.g. 8,12")
    if not encoder or len(encoder) != len(decoder):
        raise flags.ValidationError(
            f"--encoder_filters={','.join(values['encoder_filters'])} and --decoder_filters="
            f"{','.join(values['decoder_filters'])} must be equally long (one decoder block "
            "per encoder block)")
    size, multiple = values["image_size"], 2 ** len(encoder)
    if size is not None and size % multiple:
        below = size - size % multiple
        raise flags.ValidationError(
            f"--image_size={size} is not a multiple of {multiple}: each of the autoencoder's "
            f"{len(encoder)} encoder blocks (--encoder_filters) halves the image; use "
            f"--image_size={max(below, 16)} or {below + multiple}")
    return True


flags.register_multi_flags_validator(["image_size", "encoder_filters", "decoder_filters"],
                                     _valid_autoencoder)

EXPORT_DIR = flags.DEFINE_string("export_dir", "exports",
                                 "TF Serving model base path; empty: no export.")
EXPORT_NAME = flags.DEFINE_string("export_name", "semiadv", "Model name under --export_dir.")
EDIT_STRENGTH = flags.DEFINE_float(
    "edit_strength", 1.0,
    "Scale s of the change the export serves, X + s (X' - X) clipped to [0, 1]: above 1 "
    "spends fidelity the training left unused on a stronger edit (flags/utkface64_transfer.cfg "
    "uses 1.2; RESULTS.md). 1 = as trained. Retrains nothing: a rerun exports again.")
flags.register_validator("edit_strength", lambda value: value > 0,
                         message="--edit_strength must be > 0 (1: the change as trained)")
RETRAIN_FROM = flags.DEFINE_list(
    "retrain_from", [],
    "Stages to delete and train again, with every stage trained from them (san, and the "
    "autoencoder for prototypes), e.g. --retrain_from=san after changing --san_steps. "
    "Without it a rerun whose flags change a finished stage refuses and lists the "
    "differences. Stages: prototypes, gender, gender_<k>, matcher, autoencoder, san, "
    "san_<k> (link k of --flow_links).")
DETERMINISTIC = flags.DEFINE_boolean(
    "deterministic", False, "Enable TensorFlow op determinism (reproducible resumes, slower).")
MIXED_PRECISION_FLAG = flags.DEFINE_enum(
    "mixed_precision", "none", ["auto", *MIXED_PRECISION],
    "none (the default): float32; bfloat16: Keras mixed_bfloat16 (bfloat16 compute, float32 "
    "weights and outputs); auto: bfloat16 where it has native support (CPUs with avx512_bf16 "
    "or AMX, GPUs of compute capability 8.0+), else none; a work dir that exists keeps the "
    "precision it was trained with. On such a CPU bfloat16 trains the "
    "SAN 1.5-1.6x faster; at 32x32 its held-out flip rate and matcher distances matched "
    "float32, at 64x64 it flipped 93-94% of faces against float32's 97% after the same steps "
    "(BENCHMARKS.md), so it is not the default.")
JIT_COMPILE = flags.DEFINE_boolean("jit_compile", False,
                                   "Compile the training step with XLA (see BENCHMARKS.md).")
REMAPPER = flags.DEFINE_boolean(
    "remapper", False, "TensorFlow's grappler remapper (op fusion), process-wide. Off: it "
    "fails on the SAN step, which runs 5-6% faster without it; on makes the matcher's "
    "pre-training 10% faster (BENCHMARKS.md).")


def bfloat16_is_native() -> bool:
    """Whether this machine computes bfloat16 natively (so mixed_bfloat16 is faster)."""
    import tensorflow as tf  # Only the binaries resolve "auto": keep flag parsing light.

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(tuple(tf.config.experimental.get_device_details(gpu).get(
            "compute_capability", (0, 0))) >= (8, 0) for gpu in gpus)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu_flags = {flag for line in handle if line.startswith("flags")
                         for flag in line.split(":", 1)[1].split()}
    except OSError:
        return False
    return bool(cpu_flags & {"avx512_bf16", "amx_bf16"})


def _member_input_sizes(values) -> tuple:
    """--member_input_sizes as integers; a non-integer is a user error naming the flag."""
    try:
        return tuple(int(value) for value in values)
    except ValueError:
        raise UserValueError(f"--member_input_sizes={','.join(values)} must be integers, "
                             "e.g. 48,96") from None


def _mixed_precision(value: str, workdir: str | None) -> str:
    """--mixed_precision resolved: "auto" keeps an existing work dir's precision.

    A work dir trained with "auto" on a machine without native bfloat16 recorded "none";
    rerun elsewhere, "auto" must not turn into a changed setting that refuses its finished
    stages. Only a new work dir gets what this machine computes fastest.
    """
    if value != "auto":
        return value
    recorded = _recorded_mixed_precision(workdir)
    if recorded is not None:
        return recorded
    return "bfloat16" if bfloat16_is_native() else "none"


def _recorded_mixed_precision(workdir: str | None) -> str | None:
    """The precision of a work dir's config.json, or None (no work dir yet, or unreadable:
    the main job reports that itself)."""
    if not workdir:
        return None
    try:
        recorded = json.loads((Path(workdir) / "config.json").read_text()).get("mixed_precision")
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if recorded in MIXED_PRECISION else None


def train_config() -> TrainConfig:
    """The `TrainConfig` the flags describe."""
    return TrainConfig(
        data=common_flags.data_config(),
        networks=NetworkConfig(
            encoder_filters=_filters(ENCODER_FILTERS.value),
            decoder_filters=_filters(DECODER_FILTERS.value),
            residual=RESIDUAL.value, upsampling=UPSAMPLING.value,
            max_change=MAX_CHANGE.value, encoder_prototype=ENCODER_PROTOTYPE.value,
            classifier_width=CLASSIFIER_WIDTH.value, matcher_width=MATCHER_WIDTH.value,
            embedding_dim=EMBEDDING_DIM.value),
        workdir=common_flags.WORKDIR.value,
        strategy=STRATEGY.value,
        **{name: StageConfig(steps=STAGE_STEPS[name].value,
                             learning_rate=STAGE_LEARNING_RATES[name].value)
           for name in STAGE_STEPS},
        gender_weight=GENDER_WEIGHT.value, match_weight=MATCH_WEIGHT.value,
        pixel_weight=PIXEL_WEIGHT.value, gender_same_weight=GENDER_SAME_WEIGHT.value,
        gender_same_target=GENDER_SAME_TARGET.value,
        ssim_weight=SSIM_WEIGHT.value, colour_weight=COLOUR_WEIGHT.value,
        colour_tolerance=COLOUR_TOLERANCE.value, match_same=MATCH_SAME.value,
        gender_ensemble=GENDER_ENSEMBLE.value,
        member_input_sizes=_member_input_sizes(MEMBER_INPUT_SIZES.value),
        match_opposite=MATCH_OPPOSITE.value,
        match_warmup_steps=MATCH_WARMUP_STEPS.value, pixel_loss=PIXEL_LOSS.value,
        triplet_margin=TRIPLET_MARGIN.value, triplet_mining=TRIPLET_MINING.value,
        flip_augment=FLIP_AUGMENT.value, checkpoint_every=CHECKPOINT_EVERY.value,
        steps_per_loop=STEPS_PER_LOOP.value, image_summaries=IMAGE_SUMMARIES.value,
        matcher_network=MATCHER_NETWORK.value, matcher_finetune=MATCHER_FINETUNE.value,
        match_jitter=MATCH_JITTER.value, gender_jitter=GENDER_JITTER.value,
        gender_diversity=GENDER_DIVERSITY.value,
        gender_robust_radius=GENDER_ROBUST_RADIUS.value,
        gender_robust_steps=GENDER_ROBUST_STEPS.value,
        gender_robust_warmup=GENDER_ROBUST_WARMUP.value,
        flow_links=FLOW_LINKS.value,
        hide_attributes=tuple(HIDE_ATTRIBUTES.value),
        attribute_weight=ATTRIBUTE_WEIGHT.value,
        attribute_hidden_target=ATTRIBUTE_HIDDEN_TARGET.value,
        attribute_robust_radius=ATTRIBUTE_ROBUST_RADIUS.value,
        attribute_robust_steps=ATTRIBUTE_ROBUST_STEPS.value,
        attribute_grey=ATTRIBUTE_GREY.value,
        matcher_dataset=MATCHER_DATASET.value or None,
        warp_prototypes=WARP_PROTOTYPES.value,
        export_dir=EXPORT_DIR.value or None, export_name=EXPORT_NAME.value,
        edit_strength=EDIT_STRENGTH.value, deterministic=DETERMINISTIC.value,
        mixed_precision=_mixed_precision(MIXED_PRECISION_FLAG.value, common_flags.WORKDIR.value),
        jit_compile=JIT_COMPILE.value, remapper=REMAPPER.value)


def checked_train_config() -> TrainConfig:
    """`train_config()`, with what the run needs checked before any work (`UserError`s)."""
    from semiadv.apps import preflight
    from semiadv.apps import cli

    with cli.building_config():
        config = train_config()
    preflight.tf_config()
    if config.strategy == "multi_worker" and not (
            os.environ.get("TF_CONFIG") or os.environ.get("SLURM_PROCID")):
        raise UserValueError("--strategy=multi_worker needs TF_CONFIG (or a Slurm job step, "
                             "srun); see docs/multi-worker.md")
    preflight.dataset(config.data.dataset)
    if config.matcher_dataset:
        preflight.dataset(config.matcher_dataset, "--matcher_dataset")
    preflight.writable_dir(config.workdir, "--workdir")
    if config.export_dir:
        preflight.writable_dir(config.export_dir, "--export_dir")
    return config
