"""semiadv-export: exports a trained SAN work dir for TF Serving (and as a .keras file).

  semiadv-export --workdir=models/demo --export_dir=exports --export_name=san

Reads WORKDIR/san/model.keras (autoencoder), WORKDIR/gender/model.keras (auxiliary gender
CNN) and WORKDIR/prototypes.npz; writes EXPORT_DIR/NAME/VERSION/ (SavedModel +
perturber.keras) and EXPORT_DIR/models.config, then prints the version dir.
"""

import sys
from pathlib import Path

from absl import flags

from semiadv.apps import cli, common_flags  # common_flags defines --workdir.
from semiadv.apps import preflight
from semiadv.errors import UserFileNotFoundError

flags.declare_key_flag("workdir")
EXPORT_DIR = flags.DEFINE_string("export_dir", "exports", "TF Serving model base path.")
EXPORT_NAME = flags.DEFINE_string("export_name", "san", "Model name under --export_dir.")
VERSION = flags.DEFINE_integer("version", None,
                               "Version to write (default: one more than the highest).",
                               lower_bound=1)

_INPUTS = {"autoencoder": "san/model.keras", "gender_classifier": "gender/model.keras",
           "prototypes": "prototypes.npz"}


def _required_files(workdir):
    """The work dir's input files; raises UserFileNotFoundError naming every missing one."""
    paths = {role: Path(workdir) / relative for role, relative in _INPUTS.items()}
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

    autoencoder = keras.models.load_model(paths["autoencoder"], compile=False, safe_mode=True)
    gender = keras.models.load_model(paths["gender_classifier"], compile=False, safe_mode=True)
    version_dir = writer.export_san(autoencoder, gender,
                                    storage.load_prototypes(paths["prototypes"]),
                                    EXPORT_DIR.value, EXPORT_NAME.value, VERSION.value)
    print(version_dir)
    return 0


def run():
    cli.run(main, "semiadv-export", key_flag_modules=(sys.modules[__name__],))


if __name__ == "__main__":
    run()
