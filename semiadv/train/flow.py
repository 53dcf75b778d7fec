"""Sequential SANs (FlowSAN, Mirjalili et al. 2019): the links of a chain, their stages and
auxiliary classifiers, and the chain's outputs.

With `TrainConfig.flow_links` = K the SAN is a chain of K autoencoders. Link 1 is the SAN of
stage `san`, trained as without a chain. Link k >= 2 (stage `san_<k>`) starts from the
pre-trained autoencoder and is trained on what the frozen links 1..k-1 make of each face: its
X'_SM from their X'_SM, its X'_OP from their X'_OP, the paths the export runs. Each link
k >= 2 is trained against a gender classifier no other link sees, ensemble recipe
`gender_ensemble + k - 1` (`auxiliary_index`): one SAN against one classifier learns an edit
that classifier reads; a chain of edits learnt against classifiers of other architectures,
widths and seeds is what makes the result confound classifiers none of them is.

What every link is held to is the ORIGINAL face and its gender:

- the prototypes are the work dir's (the mean faces of the training split) mixed by the
  original face's label, for every link. Link k's input X^(k-1)_OP is made to read as the
  other gender, so its own gender is no guide to which way to push; the target gender's
  appearance, the real mean face, does not change along the chain. The prototypes of the
  previous link's outputs would be the mean of faces already pushed towards the other gender,
  a weaker and blurrier target, and the export would need K sets of prototypes and a label
  read again from an edited face, which is precisely what the edit fools. The export mixes
  every link's prototypes by one label, read by the paper's CNN on the original face (or
  given);
- the pixel, match, SSIM and colour terms compare the chain's output with the original face,
  so link k spends only the fidelity and identity budget the links before it left, instead
  of a full budget of its own on top of theirs.
"""

from __future__ import annotations

import re

from semiadv.config import TrainConfig
from semiadv.train import ensemble

FIRST_LINK_STAGE = "san"
_LINK_STAGE = re.compile(r"san_([2-9]|[1-9][0-9]+)")


def link_stage(link: int) -> str:
    """The stage (and work dir folder) of link `link`: `san` for link 1, else `san_<link>`."""
    if link < 1:
        raise ValueError(f"links are numbered from 1, got {link}")
    return FIRST_LINK_STAGE if link == 1 else f"san_{link}"


def link_stages(config: TrainConfig) -> tuple[str, ...]:
    """The stages of `config`'s links, in training order: san, san_2, .., san_K."""
    return tuple(link_stage(k) for k in range(1, config.flow_links + 1))


def link_index(stage: str) -> int | None:
    """k for the stage of link k (`san` is 1, `san_<k>` is k >= 2), else None."""
    if stage == FIRST_LINK_STAGE:
        return 1
    match = _LINK_STAGE.fullmatch(stage)
    return int(match.group(1)) if match else None


def auxiliary_index(config: TrainConfig, link: int) -> int:
    """The ensemble recipe (`ensemble.gender_member`) of link `link`'s (>= 2) classifier.

    `gender_ensemble + link - 1`: past the members link 1 is trained against, so no two links
    share a classifier, and a recipe's index alone fixes its network (a classifier trained
    for link 2 of a run without an ensemble is member 1 of one with an ensemble: the same
    network, in the same stage folder).
    """
    if link < 2:
        raise ValueError(f"link 1 is trained against the gender stage (and the ensemble), "
                         f"not one auxiliary classifier; got link {link}")
    return config.gender_ensemble + link - 1


def auxiliary_stages(config: TrainConfig) -> tuple[str, ...]:
    """The stages of the classifiers of links 2..K, in link order."""
    return tuple(ensemble.member_stage(auxiliary_index(config, k))
                 for k in range(2, config.flow_links + 1))


def gender_stages(config: TrainConfig) -> tuple[str, ...]:
    """Every extra gender classifier stage: the ensemble's members, then the links'."""
    return (*ensemble.member_stages(config), *auxiliary_stages(config))


def chain_outputs(links, image, same_prototype, opposite_prototype, training=False):
    """{"same", "opposite"}: X'_SM and X'_OP of `image` through `links` in sequence.

    Each link takes the previous link's output of the same kind (its X'_SM path from their
    X'_SM, its X'_OP path from their X'_OP) and the same prototypes. Link 1 sees one face for
    both outputs, so it runs once; later links run once per path.

    Args:
      links: autoencoders (`autoencoders.build_autoencoder`), first link first.
      image: the original faces [B, H, W, C].
      same_prototype, opposite_prototype: their prototypes, by the original faces' gender.
      training: passed to each link.
    """
    prototypes = {"same_prototype": same_prototype, "opposite_prototype": opposite_prototype}
    same = opposite = image
    for link in links:
        if same is opposite:
            outputs = link({"image": image, **prototypes}, training=training)
            same, opposite = outputs["same"], outputs["opposite"]
        else:
            same = link({"image": same, **prototypes}, training=training)["same"]
            opposite = link({"image": opposite, **prototypes}, training=training)["opposite"]
    return {"same": same, "opposite": opposite}


class Chain:
    """Links called like one autoencoder: {"image", "same_prototype", "opposite_prototype"}
    -> {"same", "opposite"} through every link (`chain_outputs`), e.g. for
    `heldout.san_summary`."""

    def __init__(self, links):
        self.links = tuple(links)

    def __call__(self, inputs, training=False):
        return chain_outputs(self.links, inputs["image"], inputs["same_prototype"],
                             inputs["opposite_prototype"], training=training)
