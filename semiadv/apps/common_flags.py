"""Flags shared by the binaries, defined once and validated at start-up.

Only binaries import this module; they turn the flags into config dataclasses with
`data_config()` and hand those to the library.
"""

from __future__ import annotations

from absl import flags

from semiadv.data import specs
from semiadv.config import CACHE_MODES, DataConfig

DATASET = flags.DEFINE_string(
    "dataset", "synthetic",
    "Dataset spec: synthetic (embedded, no download), utkface:PATH, folder:PATH "
    "(labels.csv or PATH/<identity>/*.jpg; add ?aligned=1 if the photos are already aligned), "
    "celeb_a or lfw (tensorflow-datasets).")
IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 32, "Side of the square face images, pixels: >= 16; to train, a multiple of "
    "2**(number of --encoder_filters), i.e. of 4 with the default 8,12 (the autoencoder halves "
    "the image once per encoder block).", lower_bound=16)
CHANNELS = flags.DEFINE_enum("channels", "3", ["1", "3"], "1 = gray, 3 = RGB.")
BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 32, "GLOBAL batch size, split over all replicas and workers.", lower_bound=1)
WORKDIR = flags.DEFINE_string("workdir", "models/demo",
                              "Work dir of the run: config, checkpoints, logs, artefacts.")
VALIDATION_FRACTION = flags.DEFINE_float(
    "validation_fraction", 0.1, "Share of identities (or photos) in the validation split; "
    "semiadv-evaluate trains its independent networks on it.", lower_bound=0.0, upper_bound=0.9)
TEST_FRACTION = flags.DEFINE_float(
    "test_fraction", 0.1, "Share of identities (or photos) held out for testing.",
    lower_bound=0.0, upper_bound=0.9)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the data splits and the training order.")
CACHE = flags.DEFINE_enum(
    "cache", "disk", list(CACHE_MODES),
    "How photos are read after their first decoding: disk (decoded once into a file of raw "
    "rows under --cache_dir, then read from it: flat memory at any dataset size), memory "
    "(held in RAM if they fit in --cache_megabytes, else disk) or none (decoded every read).")
CACHE_MEGABYTES = flags.DEFINE_integer(
    "cache_megabytes", 1024, "RAM budget of --cache=memory, MiB.", lower_bound=0)
CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Where --cache=disk writes decoded images (default: "
    "$SEMIADV_CACHE_DIR/decoded, else ~/.cache/semiadv/decoded).")
SYNTHETIC_IDENTITIES = flags.DEFINE_integer(
    "synthetic_identities", 400, "People in the synthetic dataset.", lower_bound=4)
SYNTHETIC_IMAGES_PER_IDENTITY = flags.DEFINE_integer(
    "synthetic_images_per_identity", 8, "Photos of each synthetic person.", lower_bound=2)
ALIGN_DETECTOR = flags.DEFINE_enum(
    "align_detector", "haar", ["haar", "dlib", "mediapipe"],
    "Face detector that aligns unaligned folder: photos (training and evaluation sets alike): "
    "haar (OpenCV's Haar cascades; what RESULTS.md's recipes used) or dlib (HOG faces and "
    "5-point landmark eyes, the [dlib] extra; eye-aligns 98.5% of the CelebA photos against "
    "Haar's 84.9%, docs/alignment.md) or mediapipe (BlazeFace faces and eye keypoints, the "
    "[mediapipe] extra). Each detector has its own alignment cache.")
TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None,
                                    "tensorflow-datasets data dir (default: its own).")


def valid_spec(spec: str) -> bool:
    try:
        specs.parse_spec(spec)
    except ValueError as error:
        raise flags.ValidationError(str(error)) from error
    return True


flags.register_validator("dataset", valid_spec)

def data_config() -> DataConfig:
    """The data config the shared flags describe."""
    return DataConfig(
        dataset=DATASET.value, image_size=IMAGE_SIZE.value, channels=int(CHANNELS.value),
        batch_size=BATCH_SIZE.value, seed=SEED.value,
        validation_fraction=VALIDATION_FRACTION.value, test_fraction=TEST_FRACTION.value,
        cache=CACHE.value, cache_megabytes=CACHE_MEGABYTES.value, cache_dir=CACHE_DIR.value,
        synthetic_identities=SYNTHETIC_IDENTITIES.value,
        synthetic_images_per_identity=SYNTHETIC_IMAGES_PER_IDENTITY.value,
        tfds_data_dir=TFDS_DATA_DIR.value, align_detector=ALIGN_DETECTOR.value)
