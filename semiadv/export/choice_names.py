"""The names of a choice-conditioned export's signatures, and `--hide`'s values.

No TensorFlow: the binaries and the Beam driver read these before loading anything.

A choice export (`TrainConfig.hide_attributes`) has a generic signature `perturb` taking the
choice as a `hide` vector [N, 3] in `HIDEABLE_ATTRIBUTES` order (gender, age_group, race), and
one signature per non-empty set of attributes it can hide: `hide_gender`, `hide_age`,
`hide_race`, `hide_gender_age`, `hide_gender_race`, `hide_age_race`, and `hide_all` (every
attribute the export can hide; with all three, the set's own name).
"""

from __future__ import annotations

import itertools

from semiadv.config import HIDEABLE_ATTRIBUTES
from semiadv.errors import UserValueError

GENERIC = "perturb"
GENERIC_LABELLED = "perturb_labelled"
HIDE_ALL = "hide_all"
# What --hide and the signature names call each attribute.
SHORT_NAMES = {"gender": "gender", "age_group": "age", "race": "race"}
_ALIASES = {**{short: key for key, short in SHORT_NAMES.items()},
            **{key: key for key in HIDEABLE_ATTRIBUTES}}


def parse_hide(text: str) -> tuple[str, ...]:
    """The attributes of a `--hide` value (e.g. "gender,age"; "all" for the three), in
    `HIDEABLE_ATTRIBUTES` order.

    Raises:
      UserValueError: for an empty value or an unknown name.
    """
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    if names == ["all"]:
        return HIDEABLE_ATTRIBUTES
    unknown = [name for name in names if name not in _ALIASES]
    if not names or unknown:
        raise UserValueError(
            f"--hide={text}: {'unknown ' + ', '.join(map(repr, unknown)) if unknown else 'empty'}"
            f"; use a comma-separated list of gender, age, race, or all")
    chosen = {_ALIASES[name] for name in names}
    return tuple(name for name in HIDEABLE_ATTRIBUTES if name in chosen)


def signature_name(attributes) -> str:
    """The signature hiding `attributes` (example keys or short names) and keeping the rest."""
    chosen = set(parse_hide(",".join(attributes)))
    if chosen == set(HIDEABLE_ATTRIBUTES):
        return HIDE_ALL
    return "hide_" + "_".join(SHORT_NAMES[name] for name in HIDEABLE_ATTRIBUTES
                              if name in chosen)


def hide_signatures(attributes) -> dict[str, tuple[str, ...]]:
    """{signature name: the attributes it hides} of an export that can hide `attributes`."""
    attributes = tuple(name for name in HIDEABLE_ATTRIBUTES if name in attributes)
    found = {}
    for count in range(1, len(attributes) + 1):
        for subset in itertools.combinations(attributes, count):
            found[signature_name(subset)] = subset
    found[HIDE_ALL] = attributes
    return found


def is_hide_signature(name: str) -> bool:
    """Whether `name` is one of the hide_* signatures a choice export may have."""
    return name in hide_signatures(HIDEABLE_ATTRIBUTES)
