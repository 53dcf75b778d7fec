"""dlib's face recognition ResNet as a Keras 3 network, read from dlib's own `.dat` file.

The matcher can then sit inside a TensorFlow graph and pass gradients (the SAN's match term
with `--matcher=dlib_resnet`), with no dlib at run time. One module per job:

- `dat_file`: reads the `.dat` file (no dlib needed).
- `graph`: the Keras functional graph of dlib's layers and the check of the file's structure.
- `weight_cache`: dlib's weights converted to the graph's layout, cached under the user
  cache keyed by the file's SHA-256: never downloaded, never committed.
- `chip`: the fixed similarity from our crops to dlib's chip and the layer that warps by it.
- `network`: `build_dlib_resnet` (dlib's chips in) and `build_dlib_matcher` (our crops in).
- `jitter`: the jittered views the SAN's match term compares.

The names below are what callers outside the package use; importing the package registers
its Keras layers (`ZeroPadChannels`, `FixedAffineWarp`).
"""

from semiadv.models.dlib_resnet.chip import FixedAffineWarp
from semiadv.models.dlib_resnet.dat_file import DlibModelError
from semiadv.models.dlib_resnet.graph import ZeroPadChannels
from semiadv.models.dlib_resnet.jitter import jittered_views
from semiadv.models.dlib_resnet.network import build_dlib_matcher, build_dlib_resnet

__all__ = [
    "DlibModelError",
    "FixedAffineWarp",
    "ZeroPadChannels",
    "build_dlib_matcher",
    "build_dlib_resnet",
    "jittered_views",
]
