"""What semiadv-perturb and semiadv-beam-perturb write per photo, and the options that go
with it, checked once for both.

No TensorFlow: the Beam pipeline's driver imports this.
"""

from __future__ import annotations

from semiadv.utils import imageio

# "photo": the whole photo at its own size and format, every face edited
# (`semiadv.perturb.photo`); "crop": the aligned crop of the largest face at the export's
# size (or, without alignment, the resized photo).
OUTPUTS = ("photo", "crop")
# The photo output's default most faces edited per photo: a group photo's, while bounding
# the work a photo of a crowd costs.
DEFAULT_MAX_FACES = 16
DEFAULT_JPEG_QUALITY = imageio.DEFAULT_JPEG_QUALITY


def check_output(output, align, max_faces=DEFAULT_MAX_FACES, keep_metadata=False,
                 jpeg_quality=DEFAULT_JPEG_QUALITY):
    """The output kind (None: "photo" when aligning, else "crop"), checked with the options
    that go with it.

    Raises:
        ValueError: for an unknown output, the photo output without alignment, metadata
            kept with the crop output, max_faces < 1 or a JPEG quality outside 1..100.
    """
    if output is None:
        output = "photo" if align else "crop"
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if output == "photo" and not align:
        raise ValueError("the photo output needs faces found: use it with alignment, or "
                         "the crop output to resize already aligned crops")
    if keep_metadata and output != "photo":
        raise ValueError("keep_metadata applies to the photo output only (crops are written "
                         "without metadata)")
    if max_faces < 1:
        raise ValueError(f"max_faces must be >= 1, got {max_faces}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    return output
