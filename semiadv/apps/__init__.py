"""The absl binaries. Importing this package quiets TensorFlow's start-up chatter.

On a CPU-only machine every command used to open with TensorFlow's CUDA probing (`Could not
find cuda drivers`, an error-level `failed call to cuInit`) and C++ INFO lines that buried the
binaries' own output. They are hidden unless `SEMIADV_VERBOSE=1` is set or `--verbose` is
on the command line: this runs before TensorFlow is imported, the only time it can work.
For the same reason this is where oneDNN's CPU kernels are preferred (`quiet.prefer_onednn`).
"""

import os
import sys

from semiadv.apps import quiet as _quiet

_quiet.prefer_onednn(os.environ)
_quiet.quiet_tensorflow(verbose=_quiet.verbose_requested(sys.argv[1:], os.environ))
