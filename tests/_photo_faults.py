"""Photo steps for the tests of semiadv-perturb's process pool, run in its workers (so this
module imports no TensorFlow): one that kills its worker on photos named kill*, one that
says which of TensorFlow's modules the worker holds."""

import os
import signal
from pathlib import Path

from semiadv.perturb import photoprep


def prepare_or_die(path, *args, **kwargs):
    if Path(path).name.startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    return photoprep.prepare_crop(path, *args, **kwargs)


def heavy_modules_after(path, *args, **kwargs):
    """The photo step, then which of TensorFlow's modules this process has imported."""
    import sys

    photoprep.prepare_crop(path, *args, **kwargs)
    heavy = ("tensorflow", "keras", "semiadv.data.image_ops", "semiadv.perturb.faces",
             "semiadv.perturb.folder")
    return sorted(name for name in heavy if name in sys.modules)


def heavy_modules_after_faces(path, *args, **kwargs):
    """The photo output's step (`photoprep.prepare_faces`), then which of TensorFlow's
    modules this process has imported."""
    import sys

    photoprep.prepare_faces(path, *args, **kwargs)
    heavy = ("tensorflow", "keras", "semiadv.data.image_ops", "semiadv.perturb.faces",
             "semiadv.perturb.folder")
    return sorted(name for name in heavy if name in sys.modules)
