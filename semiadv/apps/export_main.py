"""semiadv-export: exports a trained SAN work dir for TF Serving (and as a .keras file).

  semiadv-export --workdir=models/demo --export_dir=exports --export_name=san

Reads WORKDIR/san/model.keras (autoencoder), WORKDIR/gender/model.keras (auxiliary gender
CNN) and WORKDIR/prototypes.npz; writes EXPORT_DIR/NAME/VERSION/ (SavedModel +
perturber.keras) and EXPORT_DIR/models.config, then prints the version dir.
"""

import sys
from pathlib import Path

from absl import app, flags

from semiadv.apps import common_flags  # noqa: F401  (defines --workdir)

EXPORT_DIR = flags.DEFINE_string("export_dir", "exports", "TF Serving model base path.")
EXPORT_NAME = flags.DEFINE_string("export_name", "san", "Model name under --export_dir.")
VERSION = flags.DEFINE_integer("version", None,
                               "Version to write (default: one more than the highest).",
                               lower_bound=1)

_INPUTS = {"autoencoder": "san/model.keras", "gender_classifier": "gender/model.keras",
           "prototypes": "prototypes.npz"}


def _required_files(workdir):
    """The work dir's input files; raises FileNotFoundError naming every missing one."""
    paths = {role: Path(workdir) / relative for role, relative in _INPUTS.items()}
    missing = [f"{path} ({role})" for role, path in paths.items() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"work dir {workdir} lacks: " + ", ".join(missing))
    return paths


def main(argv):
    del argv
    import keras

    from semiadv import export, prototypes

    try:
        paths = _required_files(common_flags.WORKDIR.value)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    autoencoder = keras.models.load_model(paths["autoencoder"], compile=False, safe_mode=True)
    gender = keras.models.load_model(paths["gender_classifier"], compile=False, safe_mode=True)
    version_dir = export.export_san(autoencoder, gender,
                                    prototypes.load_prototypes(paths["prototypes"]),
                                    EXPORT_DIR.value, EXPORT_NAME.value, VERSION.value)
    print(version_dir)
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
