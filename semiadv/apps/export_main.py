"""semiadv-export: exports a trained SAN work dir for TF Serving (and as a .keras file).

  semiadv-export --workdir=models/demo --export_dir=exports --export_name=san

Reads WORKDIR/san/model.keras (autoencoder), WORKDIR/gender/model.keras (auxiliary gender
CNN) and WORKDIR/prototypes.npz; writes EXPORT_DIR/NAME/VERSION/ (SavedModel +
perturber.keras) and EXPORT_DIR/models.config, then prints the version dir. A sequential SAN
(`flow_links` = K > 1 in WORKDIR/config.json) also needs WORKDIR/san_2..san_K/model.keras and
is exported as one perturber applying the links in sequence. --edit_strength scales the change
each signature serves (default: the work dir's, from semiadv-train --edit_strength). A choice-conditioned SAN
(`hide_attributes` in WORKDIR/config.json) is exported with the choice as an input
(docs/serving.md).
"""

import json
import sys
from pathlib import Path

from absl import flags

from semiadv.apps import cli, common_flags  # common_flags defines --workdir.
from semiadv.apps import preflight
from semiadv.errors import UserFileNotFoundError, UserValueError

flags.declare_key_flag("workdir")
EXPORT_DIR = flags.DEFINE_string("export_dir", "exports", "TF Serving model base path.")
EXPORT_NAME = flags.DEFINE_string("export_name", "san", "Model name under --export_dir.")
EDIT_STRENGTH = flags.DEFINE_float(
    "edit_strength", None,
    "Scale s of the change every signature serves, X + s (X' - X) clipped to [0, 1]; 1 = as "
    "trained. Default: the work dir's own (its config.json, as semiadv-train exports).")
flags.register_validator("edit_strength", lambda value: value is None or value > 0,
                         message="--edit_strength must be > 0 (1: the change as trained)")
VERSION = flags.DEFINE_integer("version", None,
                               "Version to write (default: one more than the highest).",
                               lower_bound=1)

_INPUTS = {"autoencoder": "san/model.keras", "gender_classifier": "gender/model.keras",
           "prototypes": "prototypes.npz"}


def _flow_links(workdir):
    """K of a sequential SAN, from the run's config.json (1 when it says nothing)."""
    path = Path(workdir) / "config.json"
    if not path.is_file():
        return 1
    try:
        return int(json.loads(path.read_text()).get("flow_links", 1))
    except (ValueError, TypeError, AttributeError):
        raise UserValueError(f"--workdir={workdir}: {path} is not a training config "
                             "(JSON written by semiadv-train)") from None


def _hide_attributes(workdir):
    """What a choice-conditioned SAN hides, in the `hide` vector's order (() for a gender SAN)."""
    from semiadv.config import HIDEABLE_ATTRIBUTES

    path = Path(workdir) / "config.json"
    if not path.is_file():
        return ()
    try:
        named = json.loads(path.read_text()).get("hide_attributes") or ()
    except (ValueError, TypeError, AttributeError):
        return ()
    return tuple(name for name in HIDEABLE_ATTRIBUTES if name in named)


def _edit_strength(workdir):
    """--edit_strength, else the work dir's (config.json), else 1."""
    if EDIT_STRENGTH.value is not None:
        return EDIT_STRENGTH.value
    path = Path(workdir) / "config.json"
    try:
        return float(json.loads(path.read_text()).get("edit_strength", 1.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1.0


def _required_files(workdir):
    """The work dir's input files; raises UserFileNotFoundError naming every missing one."""
    inputs = dict(_INPUTS, **{f"link {k}": f"san_{k}/model.keras"
                              for k in range(2, _flow_links(workdir) + 1)})
    paths = {role: Path(workdir) / relative for role, relative in inputs.items()}
    missing = [f"{path} ({role})" for role, path in paths.items() if not path.is_file()]
    if missing:
        raise UserFileNotFoundError(
            f"--workdir={workdir}: not a finished training work dir, it lacks "
            + ", ".join(missing) + "; train it first (semiadv-train) or give the --workdir "
            "semiadv-train used")
    return paths


def main(argv):
    del argv
    paths = _required_files(common_flags.WORKDIR.value)
    preflight.writable_dir(EXPORT_DIR.value, "--export_dir")
    import keras

    from semiadv.export import writer
    from semiadv.prototypes import storage

    def load(role):
        return keras.models.load_model(paths[role], compile=False, safe_mode=True)

    later_links = [load(role) for role in paths if role.startswith("link ")]
    version_dir = writer.export_san(load("autoencoder"), load("gender_classifier"),
                                    storage.load_prototypes(paths["prototypes"]),
                                    EXPORT_DIR.value, EXPORT_NAME.value, VERSION.value,
                                    later_links=later_links,
                                    hide_attributes=_hide_attributes(common_flags.WORKDIR.value),
                                    edit_strength=_edit_strength(common_flags.WORKDIR.value))
    print(version_dir)
    return 0


def run():
    cli.run(main, "semiadv-export", key_flag_modules=(sys.modules[__name__],))


if __name__ == "__main__":
    run()
