"""The Ensemble SAN's extra gender classifiers: each member's recipe, stage name and network.

With `TrainConfig.gender_ensemble` = K > 0 the SAN is trained against the paper's gender CNN
(member 0, stage `gender`) and K more classifiers, members 1..K in stages `gender_1`..`gender_K`.
Each member's architecture, width, augmentation and seed follow from its index alone.
"""

from __future__ import annotations

import dataclasses
import re

import keras

from semiadv.config import TrainConfig
from semiadv.models import gender_classifiers


@dataclasses.dataclass(frozen=True)
class GenderMember:
    """One extra auxiliary gender classifier of the Ensemble SAN (see `gender_member`).

    Attributes:
      index: k >= 1 (the paper's CNN, in stage `gender`, is member 0).
      architecture: "vgg" (`gender_classifiers.build_vgg_gender_classifier`) or "cnn" (the paper's
        `gender_classifiers.build_gender_classifier`).
      width: width multiplier of that network.
      augment: the training augmentation: "flip", or "views" (shift, scale, flip, brightness
        and contrast: `semiadv.data.augment.augment_view`).
      seed: the weight-initialisation seed.
      input_size: the side the network reads faces at (resized to it inside when it is
        not the data's: `TrainConfig.member_input_sizes`); None: the data's.
    """

    index: int
    architecture: str
    width: float
    augment: str
    seed: int
    input_size: int | None = None

    @property
    def stage(self) -> str:
        return member_stage(self.index)


# Member k's (architecture, width relative to --classifier_width), cycling every 3 members,
# while the augmentation alternates every member: members 1..6 cover all six pairs.
_MEMBER_NETWORKS = (("vgg", 1.0), ("cnn", 0.5), ("cnn", 2.0))
_MEMBER_AUGMENTS = ("views", "flip")
_MEMBER_STAGE = re.compile(r"gender_([1-9][0-9]*)")


def member_stage(index: int) -> str:
    """The stage (and work dir folder) of ensemble member `index`: `gender_<index>`."""
    return f"gender_{index}"


def member_stages(config: TrainConfig) -> tuple[str, ...]:
    """The stages of `config`'s ensemble members: `gender_1`..`gender_K`, K = gender_ensemble."""
    return tuple(member_stage(k) for k in range(1, config.gender_ensemble + 1))


def member_index(stage: str) -> int | None:
    """k for a stage named `gender_<k>` (k >= 1), else None."""
    match = _MEMBER_STAGE.fullmatch(stage)
    return int(match.group(1)) if match else None


def gender_member(config: TrainConfig, index: int) -> GenderMember:
    """The recipe of ensemble member `index` (k >= 1): a deterministic function of k.

    With w = `config.networks.classifier_width` and s = `config.data.seed`:

      k mod 3 = 1: VGG-style, batch-normalised classifier at width w
      k mod 3 = 2: the paper's CNN at width 0.5 w
      k mod 3 = 0: the paper's CNN at width 2 w
      augment: "views" for odd k, "flip" for even k
      seed: s + k (the paper's CNN is initialised from s)

    So member 1 is a VGG trained on strongly augmented views, member 2 a half-width CNN
    trained on flips, member 3 a double-width CNN on views, and so on. With
    `config.member_input_sizes` each also reads faces at its own side. The data split and
    the training order stay those of `config.data` (the seed of the split cannot change).
    None is the evaluation's independent ResNet: it must stay unseen by the SAN.
    """
    if index < 1:
        raise ValueError(f"ensemble members are numbered from 1, got {index}")
    architecture, relative_width = _MEMBER_NETWORKS[(index - 1) % len(_MEMBER_NETWORKS)]
    sizes = config.member_input_sizes
    input_size = sizes[(index - 1) % len(sizes)] if sizes else None
    return GenderMember(index=index, architecture=architecture,
                        width=relative_width * config.networks.classifier_width,
                        augment=_MEMBER_AUGMENTS[(index - 1) % len(_MEMBER_AUGMENTS)],
                        seed=config.data.seed + index,
                        input_size=None if input_size == config.data.image_size else input_size)


def build_gender_member(member: GenderMember, image_size: int, channels: int) -> keras.Model:
    """Member `member`'s network, initialised from its own seed (same seed, same weights)."""
    # Like the evaluation's independent networks: an explicit seed right before building,
    # whatever seed the caller (the trainer seeds with the data seed) set before.
    keras.utils.set_random_seed(member.seed)
    build = {"vgg": gender_classifiers.build_vgg_gender_classifier,
             "cnn": gender_classifiers.build_gender_classifier}[member.architecture]
    name = f"gender_member{member.index}"
    if member.input_size is None:
        return build(image_size, channels, width=member.width, name=name)
    network = build(member.input_size, channels, width=member.width, name=f"{name}_network")
    image = keras.Input(shape=(image_size, image_size, channels), name="image")
    # Antialiased when shrinking, like any resize on the way to a classifier; differentiable.
    resized = keras.layers.Resizing(member.input_size, member.input_size,
                                    interpolation="bilinear", antialias=True,
                                    name="input_resize")(image)
    return keras.Model(image, network(resized), name=name)
