"""Real photos for the alignment tests (../shared/faces), and skips for what is missing."""


import pytest

from semiadv.align import dlib_models

from _shared_data import SHARED_FACES

UTKFACE = SHARED_FACES / "utkface"
CELEBA = SHARED_FACES / "celeba_identities"
needs_utkface = pytest.mark.skipif(not UTKFACE.is_dir(), reason=f"UTKFace photos not found at {UTKFACE}")
needs_celeba = pytest.mark.skipif(not CELEBA.is_dir(), reason=f"CelebA identity photos not found at {CELEBA}")
needs_dlib = pytest.mark.skipif(not dlib_models.dlib_available(),
                                reason=f"dlib not installed: {dlib_models.DLIB_INSTALL}")


def link_celeba(paths, folder):
    """Mirrors CelebA photos into `folder` as symlinks (identity/name layout)."""
    for path in paths:
        link = folder / path.relative_to(CELEBA)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    return folder


def celeba_sample(shared_faces, count):
    """`count` CelebA photos spread over the identities (a fixed, sorted stride)."""
    photos = sorted((shared_faces / "celeba_identities").glob("*/*.jpg"))
    return photos[:: len(photos) // count][:count]
