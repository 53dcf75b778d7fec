"""Frozen configuration dataclasses: the only thing binaries hand to the library.

Binaries turn absl flags into these objects and write them to the work dir as JSON, so a run
can be repeated or resumed from what it recorded, and library code never reads FLAGS.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from semiadv.errors import UserValueError
from semiadv.utils import files


# `DataConfig.cache`: how photos are read after their first decoding (see `semiadv.data.cache`).
CACHE_MODES = ("disk", "memory", "none")
# `NetworkConfig.upsampling`: the autoencoder decoder's interpolation, and
# `NetworkConfig.encoder_prototype` (`semiadv.models.autoencoders.build_autoencoder` checks both).
UPSAMPLINGS = ("nearest", "bilinear")
ENCODER_PROTOTYPES = ("same", "own", "difference")
# `TrainConfig.hide_attributes`: what a choice-conditioned SAN can hide, in the order of the
# export's `hide` vector (`semiadv.export.choice_signatures`); the example keys of the labels.
HIDEABLE_ATTRIBUTES = ("gender", "age_group", "race")
# `TrainConfig.attribute_hidden_target`: where a hidden age group or race is pushed.
ATTRIBUTE_HIDDEN_TARGETS = ("chance", "other")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What data to read and how to shape it.

    Attributes:
        dataset: dataset spec: `synthetic`, `utkface:PATH`, `folder:PATH`, `celeb_a` or `lfw`
            (see `semiadv.data.specs.parse_spec`).
        image_size: side of the square images, in pixels.
        channels: 1 (gray) or 3 (RGB).
        batch_size: GLOBAL batch size, split over replicas and workers.
        seed: seed of the split assignment and of the training order.
        validation_fraction: share of identities (or photos) held out for validation.
        test_fraction: share of identities (or photos) held out for testing.
        cache: how photos of file specs are read after their first decoding: `disk` (decoded
            and resized once into a file of raw rows under `cache_dir`, then read from it:
            flat memory at any dataset size), `memory` (held in RAM when they fit in
            `cache_megabytes`, else as `disk`) or `none` (decoded every time they are read).
        cache_megabytes: the RAM budget of `cache="memory"`.
        cache_dir: where `cache="disk"` writes (None: `$SEMIADV_CACHE_DIR/decoded`, by default
            `~/.cache/semiadv/decoded`).
        synthetic_identities: people in the synthetic set.
        synthetic_images_per_identity: photos of each synthetic person.
        tfds_data_dir: where tensorflow-datasets keeps prepared data (None: its default).
        align_cache_dir: where unaligned `folder:` photos are aligned to (None: a folder under
            `~/.cache/semiadv`).
        align_detector: the face detector unaligned `folder:` photos are aligned with
            (`semiadv.align.registry.DETECTORS`: "haar", "dlib" with the `[dlib]` extra, or
            "mediapipe" with the `[mediapipe]` extra); part of the
            alignment cache key. "haar" by default so the recipes' results and existing caches
            stay as they were.
    """

    dataset: str = "synthetic"
    image_size: int = 32
    channels: int = 3
    batch_size: int = 32
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    cache: str = "disk"
    cache_megabytes: int = 1024
    cache_dir: str | None = None
    synthetic_identities: int = 400
    synthetic_images_per_identity: int = 8
    tfds_data_dir: str | None = None
    align_cache_dir: str | None = None
    align_detector: str = "haar"

    def __post_init__(self):
        # UserValueError (a ValueError): the binaries report these in one line, exit 2.
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) \
                or self.image_size < 16:
            raise UserValueError(f"image_size must be an integer >= 16, got {self.image_size!r}")
        if self.cache not in CACHE_MODES:
            raise UserValueError(f"cache must be one of {CACHE_MODES}, got {self.cache!r}")
        if self.channels not in (1, 3):
            raise UserValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.align_detector not in ("haar", "dlib", "mediapipe"):  # registry.DETECTORS (OpenCV-free here)
            raise UserValueError(
                f"align_detector must be 'haar', 'dlib' or 'mediapipe', got {self.align_detector!r}")
        if self.batch_size < 1:
            raise UserValueError(f"batch_size must be positive, got {self.batch_size}")
        held_out = self.validation_fraction + self.test_fraction
        if not (0 <= self.validation_fraction < 1 and 0 <= self.test_fraction < 1 and held_out < 1):
            raise UserValueError(
                    "validation_fraction and test_fraction must be in [0, 1) and sum to less than 1, got "
                    f"{self.validation_fraction} and {self.test_fraction}")
        if self.cache_megabytes < 0:
            raise UserValueError(f"cache_megabytes must be 0 or more, got {self.cache_megabytes}")
        if self.synthetic_identities < 4 or self.synthetic_images_per_identity < 2:
            raise UserValueError(
                "synthetic_identities must be >= 4 and synthetic_images_per_identity >= 2, got "
                f"{self.synthetic_identities} and {self.synthetic_images_per_identity}")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Widths of the three networks (the paper's at 1.0; smaller for CPU demos and tests).

    `residual`: the autoencoder adds its output to the input face instead of re-synthesising
    it; `upsampling`: its decoder's interpolation, nearest or bilinear
    (`autoencoders.build_autoencoder`). False and nearest are the paper's. `max_change`: the
    residual autoencoder's largest change per pixel and channel (1: unbounded, the default).
    `encoder_prototype`: "same" (the paper's: one encoder pass with the same-gender prototype
    serves both outputs, so X'_OP is X'_SM's features mixed with the other prototype) or
    "own" (each output's encoder sees its own prototype: a face-specific change towards the
    other gender, at twice the autoencoder's cost) or "difference" (like "own", each pass
    seeing its prototype minus the same-gender one: zero for X'_SM).
    """

    encoder_filters: tuple[int, ...] = (8, 12)
    decoder_filters: tuple[int, ...] = (256, 128)
    residual: bool = False
    upsampling: str = "nearest"
    max_change: float = 1.0
    encoder_prototype: str = "same"
    classifier_width: float = 1.0
    matcher_width: float = 1.0
    embedding_dim: int = 128

    def __post_init__(self):
        if not self.encoder_filters or len(self.encoder_filters) != len(self.decoder_filters):
            raise UserValueError(
                "encoder_filters and decoder_filters must be non-empty and equally long (one "
                f"decoder block per encoder block), got {list(self.encoder_filters)} and "
                f"{list(self.decoder_filters)}")
        if any(f < 1 for f in (*self.encoder_filters, *self.decoder_filters)):
            raise UserValueError(
                "encoder_filters and decoder_filters must be positive, got "
                f"{list(self.encoder_filters)} and {list(self.decoder_filters)}")
        if self.upsampling not in UPSAMPLINGS:
            raise UserValueError(f"upsampling must be one of {UPSAMPLINGS}, got "
                                 f"{self.upsampling!r}")
        if self.encoder_prototype not in ENCODER_PROTOTYPES:
            raise UserValueError(f"encoder_prototype must be one of {ENCODER_PROTOTYPES}, got "
                                 f"{self.encoder_prototype!r}")
        for name in ("classifier_width", "matcher_width"):
            if not getattr(self, name) > 0:
                raise UserValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.embedding_dim < 2:
            raise UserValueError(f"embedding_dim must be at least 2, got {self.embedding_dim}")
        if not 0 < self.max_change <= 1 or (self.max_change < 1 and not self.residual):
            raise UserValueError(f"max_change must be in (0, 1], and below 1 only with residual; "
                                 f"got {self.max_change} (residual={self.residual})")

    @property
    def image_size_multiple(self) -> int:
        """What image_size must be a multiple of: the autoencoder halves the image once per
        encoder block (average pooling) and doubles it once per decoder block, so only then
        does its output have the input's size."""
        return 2 ** len(self.encoder_filters)


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """How long and how fast one training stage runs."""

    steps: int = 1000
    learning_rate: float = 1e-3

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise UserValueError(f"steps must be an integer >= 0, got {self.steps!r}")
        if not self.learning_rate >= 0:
            raise UserValueError(f"learning_rate must be >= 0, got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything the main job needs: data, networks, each stage, the SAN loss and export.

    Attributes:
      workdir: the run's folder: config, prototypes, per-stage checkpoints and models, logs.
      strategy: auto, mirrored, multi_worker or one_device (see `semiadv.train.distribute`).
      gender, matcher, autoencoder, san: steps and learning rate of each stage.
      gender_weight, match_weight, pixel_weight: lambda_G, lambda_M, lambda_D of the SAN loss.
      gender_same_weight: weight of the X'_SM half of the gender term (1: the paper's; 0: the
        gender term acts on X'_OP only, so X'_SM is free to stay the face it was).
      gender_same_target: what the X'_SM half of the gender term holds X'_SM to. "label"
        (the paper's): the cross-entropy against the true gender, which also rewards an X'_SM
        that reads *more* of its gender than the face did (with a robust gender CNN the SAN
        learnt to do exactly that, RESULTS.md). "original": the KL divergence of each
        classifier's reading of X'_SM from its reading of X (`losses.gender_reading_change`):
        X'_SM must read as the face does, no more and no less.
      ssim_weight, colour_weight: fidelity terms on X'_OP, the exported output:
        ssim_weight x (1 - SSIM(X, X'_OP)) + colour_weight x mean ΔE*ab(X, X'_OP). 0 (the
        paper's) leaves X'_OP to the gender and matching terms alone.
      colour_tolerance: ΔE*ab each pixel may change by for free: the colour term is
        colour_weight x the mean over pixels of max(ΔE*ab - colour_tolerance, 0). ΔE is
        L1-like at zero (its gradient has unit size however small the change), so without a
        tolerance any weight that stops colour casts also pins a residual autoencoder, which
        starts as the identity, to its input; per pixel, so that a local patch pays for
        itself (RESULTS.md). 0: the plain mean ΔE*ab.
      gender_ensemble: extra frozen auxiliary gender classifiers, beyond the paper's CNN, that
        the SAN is trained against (Ensemble SAN); each is pre-trained in stage `gender_<k>`
        with the gender stage's steps and learning rate (recipe: `ensemble.gender_member`). The
        SAN's gender term is then the mean over all 1 + gender_ensemble classifiers.
      member_input_sizes: the sides the extra gender classifiers (the ensemble's members and
        the links' classifiers) read faces at, cycling with k: member k reads at
        `member_input_sizes[(k - 1) % n]`, its network built for that side and the face
        resized to it inside (a bilinear, antialiased Keras `Resizing` layer, so gradients
        reach the face). A classifier reading another resolution reads other cues: one more
        way the auxiliaries differ. Empty (the default): every one reads `data.image_size`.
      match_opposite: also pull M(X'_OP) towards M(X) (the exported output is X'_OP).
      match_same: pull M(X'_SM) towards M(X) (the paper's match term). Off, the matcher runs
        on X and X'_OP only, 4/7 of its cost with dlib's ResNet, and X'_SM is held to the
        face by the pixel term alone; needs match_opposite.
      match_warmup_steps: SAN steps before the matching term switches on (the paper: 5 epochs).
      pixel_loss: l1, mse or bce, for the autoencoder pre-training and the SAN.
      triplet_margin, triplet_mining: the matcher's triplet loss.
      flip_augment: flip faces left-right (with their prototypes) while training.
      checkpoint_every: steps between checkpoints (also saved at the end of each stage).
      steps_per_loop: steps run inside one tf.function call between host-side checks.
      image_summaries: write face images to TensorBoard (off: this is a privacy tool).
      warp_prototypes: where the dataset has landmarks (CelebA), warp each face's prototypes
        onto its eyes, nose and mouth (the paper's per-image prototype alignment).
      matcher_network: the SAN's frozen matcher M: `triplet` (the auxiliary matcher trained
        in the matcher stage) or `dlib_resnet` (dlib's face recognition ResNet converted to
        Keras behind a fixed warp from our crops to its chip, `semiadv.models.dlib_resnet`; the
        matcher stage only converts it unless `matcher_finetune`).
      matcher_finetune: with `dlib_resnet`, fine-tune it with the triplet loss in the matcher
        stage (its steps and learning rate) instead of using dlib's weights as they are.
      match_jitter: the match term compares jittered views of X and X' (one random shift and
        scale of up to this share of the side, and a blur, per example;
        `dlib_resnet.jittered_views`), so the SAN keeps identity that survives other
        matchers' alignment, not features only one network reads. None: 0.05 with
        `dlib_resnet`, 0 (off, the paper's) with `triplet`.
      gender_jitter: the gender term reads jittered views of X'_SM and X'_OP (a random shift
        and scale of up to this share of the side, and a blur: `dlib_resnet.jittered_views`),
        a fresh draw for each classifier, so the SAN must hide gender in a way that survives
        the misalignments of classifiers it never saw rather than in pixel-exact patterns its
        own classifier reads (the input diversity of transferable adversarial examples).
        0: off (the paper's).
      gender_diversity: the gender term reads X'_SM and X'_OP through random differentiable
        transforms drawn afresh per example and classifier, of this strength in [0, 1]:
        colour jitter, a random crop resized back, Gaussian blur and JPEG-like quantisation
        (`semiadv.train.input_diversity`), so the edit survives the transforms other
        classifiers' inputs go through. After `gender_jitter` when both are on. 0: off (the
        paper's).
      gender_robust_radius: adversarial training of the gender CNNs (and the ensemble's
        members): each step trains on the faces within this L2 distance (over the whole
        image, [0, 1] pixel units) of the batch's that the CNN misreads most, found by
        `gender_robust_steps` steps of projected gradient ascent (`semiadv.train.robust`). A robust
        CNN is moved by gender cues, not by pixel patterns, so the SAN trained against it must
        edit the face rather than paint patches that only its own CNN reads. 0: off (the
        paper's).
      gender_robust_steps: gradient steps of that search (each costs about a training step).
      gender_robust_warmup: training steps over which the radius grows linearly from 0 to
        `gender_robust_radius` (a CNN attacked at full radius from its random start can stay
        at chance: at 64x64, 1.0 did, 0.5 did not). 0: full radius from the first step.
      flow_links: K, the links of a sequential SAN (FlowSAN, Mirjalili et al. 2019). 1: one
        SAN, the paper's. K > 1: link k >= 2 (stage `san_<k>`, the `san` stage's steps and
        learning rate, started from the pre-trained autoencoder) is trained on the outputs
        of the frozen links before it (its X'_SM from their X'_SM, its X'_OP from their
        X'_OP) against an auxiliary gender classifier no other link uses: ensemble recipe
        `gender_ensemble + k - 1` (`ensemble.gender_member`: another architecture, width,
        augmentation and seed than the paper's CNN and than each other), pre-trained in
        stage `gender_<gender_ensemble + k - 1>`. Every link keeps the original face's
        gender label and prototypes, and its loss compares the chain's outputs with the
        original face (`semiadv.train.flow`). The export applies the links in sequence.
      hide_attributes: the attributes a user may choose, per face, to hide or keep (PrivacyNet,
        Mirjalili et al., IEEE TIP 2020): any of `HIDEABLE_ATTRIBUTES`, gender included.
        Empty (the default): the paper's gender SAN, unchanged. Otherwise the autoencoder also
        reads a choice vector (`semiadv.models.choice_autoencoder`), an auxiliary classifier is
        pre-trained for each of age_group and race named (stages `age_group`, `race`), and the
        SAN stage (`semiadv.train.choice_task`) draws a random choice per face. Needs
        flow_links 1.
      attribute_weight: weight of the age_group and race terms of a choice-conditioned SAN
        (a hidden one's term, a kept one's reading change), beside gender_weight for gender's.
      attribute_hidden_target: where a choice-conditioned SAN pushes a hidden age group or
        race: "chance" (KL from uniform of its auxiliary classifier's reading: no value to
        become) or "other" (cross-entropy towards another value, `other_value`: the face's
        own shifted by half the classes, e.g. age group 0 -> 2, as hiding gender flips it).
      attribute_robust_radius: adversarial training of the auxiliary age group and race
        classifiers, as `gender_robust_radius` does for gender: each step trains on the faces
        within this L2 distance of the batch's that the classifier misreads most, so the SAN
        must edit what people see of age and race rather than paint patterns only its own
        classifiers read. 0: off (plain cross-entropy).
      attribute_robust_steps: gradient steps of that search.
      attribute_grey: the age group and race classifiers read only the luma of the face (a
        fixed first layer), in their training and in the SAN's terms, so the SAN cannot fool
        them by tinting: UTKFace's age and race are read by unseen readers from the grey
        face's structure (RESULTS.md), which is what the edit must then move.
      matcher_dataset: dataset spec the matcher learns identities from (None: the main
        dataset). Lets a SAN trained on a gender-labelled set without identities (UTKFace)
        keep identities that a matcher learned from an identity-labelled set.
      export_dir: TF Serving model base path of the export (None: skip the export stage).
      export_name: model name under export_dir.
      edit_strength: the scale s of the change the export serves, X + s (X' - X) clipped to
        [0, 1] (`semiadv.export.serving_model.strengthen`); 1 serves it as trained. Shapes no
        trained weights: a rerun with another value exports again, nothing is retrained.
      deterministic: enable TensorFlow op determinism (reproducible resumes, slower).
      mixed_precision: none (float32) or bfloat16 (Keras `mixed_bfloat16`: bfloat16 compute,
        float32 variables; the networks' outputs, losses and exported images stay float32).
      jit_compile: compile each replica step with XLA (`tf.function(jit_compile=True)`).
      remapper: TensorFlow's grappler remapper (op fusion) pass, which is process-wide. Off by
        default: on the SAN step it fails ("remapper failed: ... LeakyReluGrad") and the SAN
        stage ran 5-6% faster without it; the matcher's pre-training runs 10% faster with it
        (BENCHMARKS.md).
    """

    data: DataConfig = DataConfig()
    networks: NetworkConfig = NetworkConfig()
    workdir: str = "models/demo"
    strategy: str = "auto"
    gender: StageConfig = StageConfig(steps=600, learning_rate=1e-3)
    # Above ~3e-4 the triplet-trained matcher collapses to one point (seen on synthetic faces).
    matcher: StageConfig = StageConfig(steps=600, learning_rate=1e-4)
    autoencoder: StageConfig = StageConfig(steps=400, learning_rate=1e-3)
    san: StageConfig = StageConfig(steps=1000, learning_rate=2e-4)
    gender_weight: float = 1.0
    match_weight: float = 8.0
    pixel_weight: float = 1.0
    gender_same_weight: float = 1.0
    gender_same_target: str = "label"
    ssim_weight: float = 0.0
    colour_weight: float = 0.0
    colour_tolerance: float = 0.0
    gender_ensemble: int = 0
    member_input_sizes: tuple[int, ...] = ()
    match_opposite: bool = True
    match_same: bool = True
    match_warmup_steps: int = 0
    pixel_loss: str = "l1"
    triplet_margin: float = 0.2
    triplet_mining: str = "semi_hard"
    flip_augment: bool = True
    checkpoint_every: int = 200
    steps_per_loop: int = 20
    image_summaries: bool = False
    matcher_network: str = "triplet"
    matcher_finetune: bool = False
    match_jitter: float | None = None
    gender_jitter: float = 0.0
    gender_diversity: float = 0.0
    gender_robust_radius: float = 0.0
    gender_robust_steps: int = 3
    gender_robust_warmup: int = 0
    flow_links: int = 1
    hide_attributes: tuple[str, ...] = ()
    attribute_weight: float = 1.0
    attribute_hidden_target: str = "chance"
    attribute_robust_radius: float = 0.0
    attribute_robust_steps: int = 3
    attribute_grey: bool = False
    matcher_dataset: str | None = None
    warp_prototypes: bool = False
    export_dir: str | None = "exports"
    export_name: str = "semiadv"
    edit_strength: float = 1.0
    deterministic: bool = False
    mixed_precision: str = "none"
    jit_compile: bool = False
    remapper: bool = False

    def __post_init__(self):
        if self.mixed_precision not in MIXED_PRECISION:
            raise UserValueError(f"mixed_precision must be one of {tuple(MIXED_PRECISION)}, "
                                 f"got {self.mixed_precision!r}")
        if self.strategy not in STRATEGIES:
            raise UserValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.pixel_loss not in ("l1", "mse", "bce"):
            raise UserValueError(f"pixel_loss must be l1, mse or bce, got {self.pixel_loss!r}")
        if self.gender_same_target not in GENDER_SAME_TARGETS:
            raise UserValueError(f"gender_same_target must be one of {GENDER_SAME_TARGETS}, "
                                 f"got {self.gender_same_target!r}")
        if self.triplet_mining not in ("semi_hard", "hard"):
            raise UserValueError(
                f"triplet_mining must be semi_hard or hard, got {self.triplet_mining!r}")
        for name in ("checkpoint_every", "steps_per_loop"):
            if getattr(self, name) < 1:
                raise UserValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("gender_ensemble", "match_warmup_steps"):
            if getattr(self, name) < 0:
                raise UserValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("gender_weight", "match_weight", "pixel_weight", "triplet_margin",
                     "gender_same_weight", "ssim_weight", "colour_weight", "colour_tolerance"):
            if not getattr(self, name) >= 0:
                raise UserValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.match_same or self.match_opposite):
            raise UserValueError("match_same and match_opposite are both off: the SAN would "
                                 "have no identity term; turn one of them on")
        if self.matcher_network not in MATCHER_NETWORKS:
            raise UserValueError(f"matcher_network must be one of {MATCHER_NETWORKS}, "
                                 f"got {self.matcher_network!r}")
        if self.match_jitter is not None and not 0 <= self.match_jitter < 0.5:
            raise UserValueError(f"match_jitter must be in [0, 0.5), got {self.match_jitter}")
        if not 0 <= self.gender_jitter < 0.5:
            raise UserValueError(f"gender_jitter must be in [0, 0.5), got {self.gender_jitter}")
        if not (self.edit_strength > 0 and math.isfinite(self.edit_strength)):
            raise UserValueError(f"edit_strength must be > 0 (1: the change as trained), got "
                                 f"{self.edit_strength}")
        if not 0 <= self.gender_diversity <= 1:
            raise UserValueError(
                f"gender_diversity must be in [0, 1], got {self.gender_diversity}")
        if not self.gender_robust_radius >= 0:
            raise UserValueError(
                f"gender_robust_radius must be >= 0, got {self.gender_robust_radius}")
        if isinstance(self.gender_robust_steps, bool) or self.gender_robust_steps < 1:
            raise UserValueError(
                f"gender_robust_steps must be an integer >= 1, got {self.gender_robust_steps!r}")
        if isinstance(self.gender_robust_warmup, bool) or self.gender_robust_warmup < 0:
            raise UserValueError(f"gender_robust_warmup must be an integer >= 0, "
                                 f"got {self.gender_robust_warmup!r}")
        if any(isinstance(size, bool) or not isinstance(size, int) or size < 16
               for size in self.member_input_sizes):
            raise UserValueError(f"member_input_sizes must be integers >= 16, got "
                                 f"{list(self.member_input_sizes)}")
        if isinstance(self.flow_links, bool) or not isinstance(self.flow_links, int) \
                or self.flow_links < 1:
            raise UserValueError(f"flow_links must be an integer >= 1 (1: one SAN), "
                                 f"got {self.flow_links!r}")
        unknown = sorted(set(self.hide_attributes) - set(HIDEABLE_ATTRIBUTES))
        if unknown or len(set(self.hide_attributes)) != len(self.hide_attributes):
            raise UserValueError(f"hide_attributes must be distinct names among "
                                 f"{', '.join(HIDEABLE_ATTRIBUTES)}, got "
                                 f"{list(self.hide_attributes)}")
        # One order (the `hide` vector's), so a rerun naming them in another order is the
        # same run to the stage records.
        object.__setattr__(self, "hide_attributes", tuple(
            name for name in HIDEABLE_ATTRIBUTES if name in self.hide_attributes))
        if self.hide_attributes and "gender" not in self.hide_attributes:
            # The export's same/neutral/opposite signatures, and the prototypes the
            # autoencoder reads, are gender's: a choice SAN always offers to hide it.
            raise UserValueError(f"hide_attributes must include gender, got "
                                 f"{list(self.hide_attributes)}")
        if self.hide_attributes and self.flow_links > 1:
            raise UserValueError("hide_attributes needs flow_links 1: the links of a "
                                 "sequential SAN are gender-only")
        if not self.attribute_weight >= 0:
            raise UserValueError(f"attribute_weight must be >= 0, got {self.attribute_weight}")
        if self.attribute_hidden_target not in ATTRIBUTE_HIDDEN_TARGETS:
            raise UserValueError(f"attribute_hidden_target must be one of "
                                 f"{', '.join(ATTRIBUTE_HIDDEN_TARGETS)}, got "
                                 f"{self.attribute_hidden_target!r}")
        if not self.attribute_robust_radius >= 0:
            raise UserValueError(
                f"attribute_robust_radius must be >= 0, got {self.attribute_robust_radius}")
        if isinstance(self.attribute_robust_steps, bool) or self.attribute_robust_steps < 1:
            raise UserValueError(f"attribute_robust_steps must be an integer >= 1, "
                                 f"got {self.attribute_robust_steps!r}")
        multiple = self.networks.image_size_multiple
        if self.data.image_size % multiple:
            below = self.data.image_size - self.data.image_size % multiple
            raise UserValueError(
                f"image_size {self.data.image_size} is not a multiple of {multiple}: the "
                f"autoencoder's {len(self.networks.encoder_filters)} encoder blocks each halve "
                f"the image (encoder_filters={list(self.networks.encoder_filters)}); use "
                f"{max(below, 16)} or {below + multiple}")

    @property
    def choice_attributes(self) -> tuple[str, ...]:
        """`hide_attributes` in `HIDEABLE_ATTRIBUTES` order (the `hide` vector's)."""
        return tuple(name for name in HIDEABLE_ATTRIBUTES if name in self.hide_attributes)

    @property
    def attribute_classifiers(self) -> tuple[str, ...]:
        """The attributes besides gender that need an auxiliary classifier (and stage)."""
        return tuple(name for name in self.choice_attributes if name != "gender")

    @property
    def effective_match_jitter(self) -> float:
        """`match_jitter`, with None resolved by the matcher network."""
        if self.match_jitter is not None:
            return self.match_jitter
        return 0.05 if self.matcher_network == "dlib_resnet" else 0.0


MATCHER_NETWORKS = ("triplet", "dlib_resnet")
GENDER_SAME_TARGETS = ("label", "original")
STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
# `TrainConfig.mixed_precision` -> the Keras dtype policy the networks are built with.
MIXED_PRECISION = {"none": "float32", "bfloat16": "mixed_bfloat16"}


def to_json(config: Any) -> str:
    """Serialises a (nested) config dataclass to indented JSON."""
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


def write_config(config: Any, path: str | Path) -> None:
    """Writes a config next to a run's artefacts, so the run can be told apart and repeated."""
    files.write_text_atomically(path, to_json(config) + "\n")


def from_dict(cls, values: dict) -> Any:
    """Builds a config dataclass from a dict, recursing into nested dataclass fields."""
    kwargs = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if name not in hints:
            raise ValueError(f"unknown {cls.__name__} field {name!r}")
        field_type = hints[name].type
        nested = _DATACLASSES.get(field_type if isinstance(field_type, str) else field_type.__name__)
        if nested and isinstance(value, dict):
            value = from_dict(nested, value)
        elif isinstance(value, list):  # JSON has no tuples.
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


_DATACLASSES = {"DataConfig": DataConfig, "NetworkConfig": NetworkConfig,
                "StageConfig": StageConfig, "TrainConfig": TrainConfig}
