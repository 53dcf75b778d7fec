"""Procedurally drawn synthetic faces: the embedded default dataset.

The real data (UTKFace, CelebA identities) is not always present, so tests, demos and default
training runs use this generator instead. It draws cartoon faces with numpy and OpenCV only (no
files, no downloads) and is fully deterministic.

Each identity has fixed traits (gender, skin tone, hair, face shape, eye spacing, nose, mouth,
a mole, ...) drawn from a generator seeded by ``(seed, identity)`` only, so identity ``k`` looks
the same whatever ``num_identities`` is. Each image adds small, independent variation (pose,
lighting, expression, background, clothing, noise) from a generator seeded by
``(seed, identity, image)``. Gender shows in several correlated but overlapping cues (hair length,
jaw shape, face width, brow thickness, facial hair, lip colour, eye size and eyeliner), so a small
CNN can learn it without any single cue giving it away.

Each identity also has an age and a race code (`semiadv.data.attributes`), read off traits the
painter already draws, so the faces and every earlier seed's images are unchanged: the age
from the hairline (a higher hairline, a larger forehead, an older person: 5 to 80 years),
the race code from the skin tone's band on the palette (0 lightest to 4 darkest). They exist
so attribute code can be tested end to end on pixels that carry them; the race codes share
UTKFace's range, not its meanings.

Faces are drawn in "face coordinates": the unit square, x to the right and y down, with the eyes
near y = 0.43 and x = 0.35 / 0.65 as in UTKFace aligned crops. Shapes are drawn antialiased at a
supersampled resolution and then area-resized down to the requested size.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import cv2
import numpy as np

# Drawing happens at this multiple of the output size (and at least _MIN_CANVAS pixels) so that
# area resizing turns sub-pixel shapes into smooth, face-like small images.
_SUPERSAMPLE = 4
_MIN_CANVAS = 64
# cv2 fixed-point precision for polygon vertices: 4 fractional bits = 1/16 pixel.
_SHIFT_BITS = 4
_MIN_IMAGE_SIZE = 16

# Keep the identity and image streams disjoint even when their seed tuples could collide.
_IDENTITY_STREAM = 0
_IMAGE_STREAM = 1

_FACE_CENTER_X = 0.5
_FACE_CENTER_Y = 0.5
_EYE_LEVEL = 0.43

# RGB colours in [0, 1].
_SKIN_TONES = np.array([
    (0.97, 0.85, 0.76),
    (0.93, 0.76, 0.63),
    (0.82, 0.62, 0.47),
    (0.67, 0.47, 0.33),
    (0.50, 0.33, 0.23),
    (0.33, 0.22, 0.16),
])
_HAIR_COLOURS = np.array([
    (0.07, 0.06, 0.05),  # black
    (0.20, 0.13, 0.08),  # dark brown
    (0.36, 0.23, 0.13),  # brown
    (0.55, 0.40, 0.24),  # light brown
    (0.86, 0.73, 0.46),  # blonde
    (0.56, 0.23, 0.10),  # auburn
    (0.62, 0.61, 0.60),  # grey
])
_HAIR_COLOUR_WEIGHTS = np.array([0.28, 0.24, 0.18, 0.11, 0.09, 0.05, 0.05])
_EYE_COLOURS = np.array([
    (0.18, 0.10, 0.05),
    (0.33, 0.20, 0.10),
    (0.45, 0.38, 0.18),
    (0.30, 0.45, 0.28),
    (0.30, 0.48, 0.70),
    (0.45, 0.50, 0.55),
])
_LIP_RED = np.array((0.78, 0.20, 0.25))
_WHITE_OF_EYE = np.array((0.95, 0.94, 0.92))
_PUPIL = np.array((0.03, 0.03, 0.03))

# Hair length classes: buzz cut, short, medium (to the jaw), long (to the shoulders).
_BUZZ, _SHORT, _MEDIUM, _LONG = range(4)
_HAIR_LENGTH_PROBS = {
    True: np.array([0.12, 0.70, 0.13, 0.05]),  # male
    False: np.array([0.0, 0.12, 0.23, 0.65]),  # female
}
# The hairline's height (face coordinates, before a male's +0.02) and the ages it stands for:
# the top of the range (a receding hairline) is the oldest.
_HAIRLINE_RANGE = (0.19, 0.27)
_AGE_RANGE = (5, 80)
# The skin palette has one band per race code (between its 6 colours).
_RACE_CODES = 5

# Facial hair classes (males only); most males are clean-shaven or stubbled.
_NO_FACIAL_HAIR, _STUBBLE, _MOUSTACHE, _BEARD, _GOATEE = range(5)
_FACIAL_HAIR_PROBS = np.array([0.42, 0.22, 0.10, 0.20, 0.06])


@dataclasses.dataclass(frozen=True)
class _Identity:
    """Fixed traits of one synthetic person; every image of the person shares them."""

    male: bool
    age: int
    race: int
    skin: np.ndarray
    hair_colour: np.ndarray
    hair_length: int
    hairline_y: float
    fringe: bool
    parting: float
    facial_hair: int
    face_half_width: float
    face_half_height: float
    jaw_squareness: float
    jaw_taper: float
    eye_spacing: float
    eye_y: float
    eye_half_width: float
    eye_half_height: float
    eye_colour: np.ndarray
    eyeliner: float
    brow_thickness: float
    brow_arch: float
    brow_gap: float
    nose_length: float
    nose_width: float
    mouth_y_offset: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    lip_colour: np.ndarray
    mole: tuple[float, float] | None


@dataclasses.dataclass(frozen=True)
class _Conditions:
    """Per-image variation: pose, expression, lighting, surroundings and noise level."""

    rotation_deg: float
    scale: float
    shift: tuple[float, float]
    smile: float
    eye_openness: float
    gaze: float
    background: np.ndarray
    background_gradient: float
    clothing: np.ndarray
    brightness: float
    light_gradient: float
    noise_std: float


def _identity_rng(seed: int, identity: int) -> np.random.Generator:
    return np.random.default_rng([seed, _IDENTITY_STREAM, identity])


def _image_rng(seed: int, identity: int, image: int) -> np.random.Generator:
    return np.random.default_rng([seed, _IMAGE_STREAM, identity, image])


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1.0 - t) * np.asarray(a) + t * np.asarray(b)


def _palette_colour(rng: np.random.Generator, palette: np.ndarray) -> tuple[np.ndarray, int]:
    """Picks a colour on the piecewise-linear path through ``palette``, so tones are continuous.

    Returns:
        (the colour, its band: the index of the palette colour it starts from).
    """
    position = rng.uniform(0.0, len(palette) - 1)
    low = int(position)
    high = min(low + 1, len(palette) - 1)
    return _mix(palette[low], palette[high], position - low), low


def _draw_identity(rng: np.random.Generator) -> _Identity:
    """Draws one person's fixed traits; gender shifts the odds of every cue, never decides one."""
    male = bool(rng.random() < 0.5)
    sign = 1.0 if male else -1.0  # pushes a gendered trait up for males, down for females
    skin, skin_band = _palette_colour(rng, _SKIN_TONES)
    hair_colour = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_COLOUR_WEIGHTS)]
    hair_colour = np.clip(hair_colour * rng.uniform(0.85, 1.15), 0.0, 1.0)
    hair_length = int(rng.choice(4, p=_HAIR_LENGTH_PROBS[male]))
    facial_hair = int(rng.choice(5, p=_FACIAL_HAIR_PROBS)) if male else _NO_FACIAL_HAIR
    lip_redness = np.clip(rng.normal(0.32 if male else 0.62, 0.15), 0.05, 0.95)
    lip_base = skin * 0.8
    has_mole = rng.random() < 0.6
    mole = (
        (float(rng.uniform(0.33, 0.67)), float(rng.uniform(0.50, 0.78))) if has_mole else None
    )
    # Drawn here, where the draw always was: every later trait keeps its random numbers.
    hairline = float(rng.uniform(_HAIRLINE_RANGE[0], _HAIRLINE_RANGE[1]))
    recession = (_HAIRLINE_RANGE[1] - hairline) / (_HAIRLINE_RANGE[1] - _HAIRLINE_RANGE[0])
    return _Identity(
        male=male,
        age=int(_AGE_RANGE[0] + recession * (_AGE_RANGE[1] - _AGE_RANGE[0])),
        race=int(min(skin_band, _RACE_CODES - 1)),
        skin=skin,
        hair_colour=hair_colour,
        hair_length=hair_length,
        hairline_y=hairline + (0.02 if male else 0.0),
        fringe=bool(rng.random() < (0.15 if male else 0.35)),
        parting=float(rng.uniform(-0.12, 0.12)),
        facial_hair=facial_hair,
        face_half_width=float(rng.normal(0.305 + 0.012 * sign, 0.014)),
        face_half_height=float(rng.normal(0.40 + 0.008 * sign, 0.015)),
        jaw_squareness=float(np.clip(rng.normal(2.9 if male else 2.05, 0.35), 1.6, 4.0)),
        jaw_taper=float(np.clip(rng.normal(0.10 if male else 0.22, 0.06), 0.0, 0.35)),
        eye_spacing=float(rng.uniform(0.27, 0.33)),
        eye_y=float(_EYE_LEVEL + rng.normal(0.0, 0.01)),
        eye_half_width=float(rng.normal(0.060 - 0.003 * sign, 0.005)),
        eye_half_height=float(rng.normal(0.028 - 0.003 * sign, 0.003)),
        eye_colour=_EYE_COLOURS[rng.integers(len(_EYE_COLOURS))],
        eyeliner=float(np.clip(rng.normal(0.2 if male else 0.7, 0.2), 0.0, 1.0)),
        brow_thickness=float(np.clip(rng.normal(0.024 if male else 0.013, 0.004), 0.007, 0.036)),
        brow_arch=float(np.clip(rng.normal(0.008 if male else 0.020, 0.005), 0.0, 0.03)),
        brow_gap=float(rng.normal(0.052 if male else 0.064, 0.006)),
        nose_length=float(rng.uniform(0.12, 0.17)),
        nose_width=float(rng.normal(0.068 + 0.004 * sign, 0.008)),
        mouth_y_offset=float(rng.uniform(0.065, 0.09)),
        mouth_half_width=float(rng.uniform(0.07, 0.10)),
        upper_lip=float(np.clip(rng.normal(0.012 if male else 0.017, 0.003), 0.006, 0.026)),
        lower_lip=float(np.clip(rng.normal(0.018 if male else 0.025, 0.004), 0.010, 0.036)),
        lip_colour=_mix(lip_base, _LIP_RED, lip_redness),
        mole=mole,
    )


def _draw_conditions(rng: np.random.Generator) -> _Conditions:
    """Draws one image's variation, kept small so that identity traits dominate."""
    grey = rng.uniform(0.45, 0.75)
    background = np.clip(grey + rng.normal(0.0, 0.05, size=3), 0.0, 1.0)
    return _Conditions(
        rotation_deg=float(rng.normal(0.0, 4.0)),
        scale=float(rng.normal(1.0, 0.03)),
        shift=(float(rng.normal(0.0, 0.015)), float(rng.normal(0.0, 0.015))),
        smile=float(rng.uniform(-0.3, 1.0)),
        eye_openness=float(np.clip(rng.normal(0.9, 0.12), 0.45, 1.1)),
        gaze=float(rng.normal(0.0, 0.25)),
        background=background,
        background_gradient=float(rng.normal(0.0, 0.08)),
        clothing=rng.uniform(0.1, 0.8, size=3),
        brightness=float(rng.uniform(0.82, 1.12)),
        light_gradient=float(rng.normal(0.0, 0.12)),
        noise_std=float(rng.uniform(0.005, 0.02)),
    )


@functools.lru_cache(maxsize=64)
def _unit_arc(start: float, end: float, num_points: int) -> np.ndarray:
    angles = np.linspace(start, end, num_points)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0,
             end: float = 2 * math.pi, num_points: int = 28) -> np.ndarray:
    """Returns points on an axis-aligned elliptical arc, in face coordinates."""
    # Cached unit arcs: every face draws many small ellipses, and recomputing linspace/cos for
    # each one would dominate the drawing time.
    return _unit_arc(start, end, num_points) * (rx, ry) + (cx, cy)


def _face_outline(identity: _Identity, scale: float = 1.0, num_points: int = 64) -> np.ndarray:
    """Face contour: a rounded top and a superellipse lower half whose squareness makes the jaw.

    Args:
        identity: Whose face.
        scale: Grows the outline about the face centre (used for the hair that hugs the head).
        num_points: Number of contour points.

    Returns:
        [num_points, 2] points, clockwise in image coordinates, starting at the right cheek.
    """
    angles = np.linspace(0.0, 2 * math.pi, num_points, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    lower = sin > 0  # y grows downwards, so positive sine is the chin side
    exponent = np.where(lower, identity.jaw_squareness, 2.2)
    x = np.sign(cos) * np.abs(cos) ** (2.0 / exponent)
    y = np.sign(sin) * np.abs(sin) ** (2.0 / exponent)
    # Narrow the face towards the chin: this taper is what makes a pointed (mostly female) jaw.
    x = x * (1.0 - identity.jaw_taper * np.where(lower, sin, 0.0) ** 2)
    return np.stack([
        _FACE_CENTER_X + scale * identity.face_half_width * x,
        _FACE_CENTER_Y + scale * identity.face_half_height * y,
    ], axis=1)


class _Painter:
    """Draws shapes given in face coordinates onto a canvas, after applying the image's pose."""

    def __init__(self, canvas: np.ndarray, conditions: _Conditions):
        self.canvas = canvas
        size = canvas.shape[0]
        angle = math.radians(conditions.rotation_deg)
        linear = conditions.scale * np.array([
            [math.cos(angle), -math.sin(angle)],
            [math.sin(angle), math.cos(angle)],
        ])
        center = np.array([_FACE_CENTER_X, _FACE_CENTER_Y])
        # Rotate and scale about the face centre, then shift; finally map the unit square to pixels.
        offset = center - linear @ center + np.array(conditions.shift)
        self._linear = linear * size
        self._offset = offset * size
        self._pixels_per_unit = size * conditions.scale

    def _to_fixed_point(self, points: np.ndarray) -> np.ndarray:
        pixels = np.asarray(points) @ self._linear.T + self._offset
        return np.round(pixels * (1 << _SHIFT_BITS)).astype(np.int32)

    @staticmethod
    def _colour(colour) -> tuple:
        if np.isscalar(colour):
            return (int(colour),)
        return tuple((np.clip(colour, 0.0, 1.0) * 255.0 + 0.5).astype(np.int32).tolist())

    def fill(self, points: np.ndarray, colour, target: np.ndarray | None = None) -> None:
        """Fills a polygon; ``colour`` is RGB in [0, 1], or a 0..255 scalar for a mask target."""
        cv2.fillPoly(self.canvas if target is None else target, [self._to_fixed_point(points)],
                     self._colour(colour), cv2.LINE_AA, _SHIFT_BITS)

    def stroke(self, points: np.ndarray, colour, width: float) -> None:
        """Draws a polyline ``width`` face units wide (at least one pixel)."""
        thickness = max(1, int(round(width * self._pixels_per_unit)))
        cv2.polylines(self.canvas, [self._to_fixed_point(points)], False, self._colour(colour),
                      thickness, cv2.LINE_AA, _SHIFT_BITS)

    def blend(self, mask: np.ndarray, colour, opacity: float) -> None:
        """Paints ``colour`` through a 0..255 mask, for translucent layers such as stubble."""
        # Work only inside the mask's bounding box: per-pixel float blending is the hot spot.
        x, y, width, height = cv2.boundingRect(mask)
        if width == 0 or height == 0:
            return
        region = self.canvas[y:y + height, x:x + width]
        weight = mask[y:y + height, x:x + width, None].astype(np.float32) * (opacity / 255.0)
        target = np.asarray(colour, np.float32) * 255.0
        blended = region + (target - region) * weight
        region[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def _paint_background(canvas: np.ndarray, conditions: _Conditions) -> None:
    """Fills the canvas with a softly graded, nearly neutral backdrop."""
    size = canvas.shape[0]
    # One colour per row, broadcast along it: far cheaper than a full float image.
    ramp = np.linspace(-1.0, 1.0, size)[:, None]
    rows = conditions.background[None, :] * (1.0 + conditions.background_gradient * ramp)
    canvas[...] = np.clip(rows * 255.0 + 0.5, 0, 255).astype(np.uint8)[:, None, :]


def _paint_shoulders_and_neck(painter: _Painter, identity: _Identity,
                              conditions: _Conditions) -> None:
    shoulder_width = identity.face_half_width * (1.75 if identity.male else 1.55)
    painter.fill(_ellipse(_FACE_CENTER_X, 1.12, shoulder_width, 0.22), conditions.clothing)
    neck_half_width = identity.face_half_width * (0.55 if identity.male else 0.45)
    neck = np.array([
        (_FACE_CENTER_X - neck_half_width, 0.70), (_FACE_CENTER_X + neck_half_width, 0.70),
        (_FACE_CENTER_X + neck_half_width, 0.97), (_FACE_CENTER_X - neck_half_width, 0.97),
    ])
    painter.fill(neck, identity.skin * 0.82)  # in the chin's shadow
    # A neckline in the clothing colour so the neck does not run into the image edge.
    painter.fill(_ellipse(_FACE_CENTER_X, 1.03, neck_half_width * 1.6, 0.08), conditions.clothing)


def _paint_back_hair(painter: _Painter, identity: _Identity) -> None:
    """Hair that falls behind the face and frames it: the strongest (but not a certain) cue."""
    if identity.hair_length < _MEDIUM:
        return
    bottom = 0.84 if identity.hair_length == _MEDIUM else 1.05
    half_width = identity.face_half_width * (1.22 if identity.hair_length == _MEDIUM else 1.32)
    top = _ellipse(_FACE_CENTER_X, _FACE_CENTER_Y, half_width,
                   identity.face_half_height * 1.12, math.pi, 2 * math.pi)
    sides = np.array([
        (_FACE_CENTER_X + half_width * 1.02, bottom),
        (_FACE_CENTER_X - half_width * 1.02, bottom),
    ])
    painter.fill(np.concatenate([top, sides]), identity.hair_colour * 0.85)


def _paint_ears(painter: _Painter, identity: _Identity) -> None:
    for side in (-1.0, 1.0):
        x = _FACE_CENTER_X + side * identity.face_half_width * 0.98
        painter.fill(_ellipse(x, identity.eye_y + 0.05, 0.035, 0.06), identity.skin * 0.9)


def _soft_blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur done at quarter resolution: the same look for smooth masks, on a
    sixteenth of the pixels."""
    size = mask.shape[0]
    small_size = max(8, size // 4)
    small = cv2.resize(mask, (small_size, small_size), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * small_size / size)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _paint_face_skin(painter: _Painter, identity: _Identity) -> None:
    """Skin with a soft darker rim, so the face reads as round rather than flat."""
    outline = _face_outline(identity)
    painter.fill(outline, identity.skin)
    size = painter.canvas.shape[0]
    face_mask = np.zeros((size, size), np.uint8)
    painter.fill(outline, 255, target=face_mask)
    rim = face_mask.copy()
    painter.fill(_face_outline(identity, scale=0.8) - (0.0, 0.02), 0, target=rim)
    # Blur only the shading mask, then keep it inside the face, so hair and background stay crisp.
    rim = _soft_blur(rim, 0.04 * size)
    shading = (rim.astype(np.uint16) * face_mask // 255).astype(np.uint8)
    painter.blend(shading, identity.skin * 0.7, 0.6)


def _paint_hair_cap(painter: _Painter, identity: _Identity) -> None:
    """Hair on top of the head down to the hairline, plus side locks for longer styles."""
    colour = identity.hair_colour
    if identity.hair_length == _BUZZ:
        # A buzz cut shows as a thin shadow of hair colour over the skin.
        colour = _mix(identity.skin, identity.hair_colour, 0.6)
    thickness = {_BUZZ: 1.02, _SHORT: 1.09, _MEDIUM: 1.11, _LONG: 1.11}[identity.hair_length]
    outline = _face_outline(identity, scale=thickness, num_points=64)
    temple_y = identity.eye_y - 0.07
    cap_top = outline[outline[:, 1] < temple_y]
    # The outline starts at the right cheek and runs clockwise, so the top arc wraps around the
    # start index; roll it so it runs left temple -> crown -> right temple.
    order = np.argsort(np.arctan2(cap_top[:, 1] - _FACE_CENTER_Y, cap_top[:, 0] - _FACE_CENTER_X))
    cap_top = cap_top[order]
    hairline_y = identity.hairline_y + (0.08 if identity.fringe else 0.0)
    parting_x = _FACE_CENTER_X + identity.parting
    hairline_x = np.linspace(cap_top[-1, 0], cap_top[0, 0], 15)
    # The hairline dips down at the temples and bulges up near the parting.
    relative = (hairline_x - parting_x) / identity.face_half_width
    hairline = np.stack([hairline_x, hairline_y + 0.05 * relative ** 4 - 0.015 * np.exp(
        -(relative * 4) ** 2)], axis=1)
    hairline[:, 1] = np.minimum(hairline[:, 1], temple_y)
    painter.fill(np.concatenate([cap_top, hairline]), colour)
    if identity.hair_length >= _MEDIUM:
        _paint_side_locks(painter, identity, temple_y)


def _paint_side_locks(painter: _Painter, identity: _Identity, temple_y: float) -> None:
    """Strands that fall over the sides of the face, hiding the ears and narrowing the cheeks."""
    bottom = identity.eye_y + (0.22 if identity.hair_length == _MEDIUM else 0.32)
    for side in (-1.0, 1.0):
        outer = _FACE_CENTER_X + side * identity.face_half_width * 1.10
        inner = _FACE_CENTER_X + side * identity.face_half_width * 0.86
        lock = np.array([
            (outer, temple_y - 0.08), (inner, temple_y - 0.02),
            (inner + side * 0.02, bottom), (outer + side * 0.02, bottom + 0.02),
        ])
        painter.fill(lock, identity.hair_colour)


def _paint_facial_hair(painter: _Painter, identity: _Identity, mouth_y: float) -> None:
    """Stubble, moustache, beard or goatee; drawn before the lips so the mouth stays visible."""
    if identity.facial_hair == _NO_FACIAL_HAIR:
        return
    size = painter.canvas.shape[0]
    mask = np.zeros((size, size), np.uint8)
    nose_tip_y = identity.eye_y + identity.nose_length
    outline = _face_outline(identity, scale=0.99)
    if identity.facial_hair in (_STUBBLE, _BEARD):
        jaw = outline[outline[:, 1] > nose_tip_y - 0.01]
        order = np.argsort(np.arctan2(jaw[:, 1] - _FACE_CENTER_Y, jaw[:, 0] - _FACE_CENTER_X))
        painter.fill(jaw[order], 255, target=mask)
        # Cheeks above the mouth stay bare: carve them out of the jaw region.
        for side in (-1.0, 1.0):
            cheek_x = _FACE_CENTER_X + side * identity.face_half_width * 0.45
            painter.fill(_ellipse(cheek_x, nose_tip_y + 0.005, identity.face_half_width * 0.38,
                                  0.045), 0, target=mask)
    if identity.facial_hair in (_MOUSTACHE, _BEARD, _GOATEE):
        half_width = identity.mouth_half_width * 1.1
        moustache = np.array([
            (_FACE_CENTER_X - half_width, mouth_y + 0.01),
            (_FACE_CENTER_X - 0.03, nose_tip_y + 0.01),
            (_FACE_CENTER_X + 0.03, nose_tip_y + 0.01),
            (_FACE_CENTER_X + half_width, mouth_y + 0.01),
            (_FACE_CENTER_X, mouth_y - 0.012),
        ])
        painter.fill(moustache, 255, target=mask)
    if identity.facial_hair == _GOATEE:
        painter.fill(_ellipse(_FACE_CENTER_X, mouth_y + 0.06, identity.mouth_half_width * 0.7,
                              0.055), 255, target=mask)
    opacity = 0.35 if identity.facial_hair == _STUBBLE else 0.85
    colour = identity.hair_colour * (0.8 if identity.facial_hair == _STUBBLE else 1.0)
    painter.blend(mask, colour, opacity)


def _paint_eyes_and_brows(painter: _Painter, identity: _Identity, conditions: _Conditions) -> None:
    half_width = identity.eye_half_width
    open_height = identity.eye_half_height * conditions.eye_openness
    for side in (-1.0, 1.0):
        cx = _FACE_CENTER_X + side * identity.eye_spacing / 2
        cy = identity.eye_y
        x = np.linspace(-1.0, 1.0, 13)
        upper = np.stack([cx + half_width * x, cy - open_height * (1 - x ** 2) ** 0.8], axis=1)
        lower = np.stack([cx - half_width * x, cy + 0.7 * open_height * (1 - x ** 2)], axis=1)
        painter.fill(np.concatenate([upper, lower]), _WHITE_OF_EYE)
        iris_x = cx + conditions.gaze * half_width * 0.3
        iris_radius = half_width * 0.48
        painter.fill(_ellipse(iris_x, cy, iris_radius, min(iris_radius, open_height * 0.95)),
                     identity.eye_colour)
        painter.fill(_ellipse(iris_x, cy, iris_radius * 0.45, min(iris_radius, open_height) * 0.45),
                     _PUPIL)
        # Upper lid line; darker and heavier with eyeliner / lashes.
        lid_colour = _mix(identity.skin * 0.45, _PUPIL, identity.eyeliner)
        painter.stroke(upper, lid_colour, 0.006 + 0.008 * identity.eyeliner)
        _paint_brow(painter, identity, cx, side)


def _paint_brow(painter: _Painter, identity: _Identity, eye_x: float, side: float) -> None:
    """A tapered brow: thick and straight for most males, thin and arched for most females."""
    x = np.linspace(-1.0, 1.0, 11)
    inner_to_outer = side * x  # -1 at the nose side, +1 at the temple
    centre_x = eye_x + side * 0.006
    base_y = identity.eye_y - identity.brow_gap
    xs = centre_x + identity.eye_half_width * 1.25 * x
    ys = base_y - identity.brow_arch * (1 - (x * 0.9) ** 2) + 0.008 * inner_to_outer
    thickness = identity.brow_thickness * (1.0 - 0.45 * (inner_to_outer + 1) / 2)
    upper = np.stack([xs, ys - thickness / 2], axis=1)
    lower = np.stack([xs, ys + thickness / 2], axis=1)[::-1]
    painter.fill(np.concatenate([upper, lower]), identity.hair_colour * 0.8)


def _paint_nose(painter: _Painter, identity: _Identity) -> None:
    """A bridge shadow, a lit tip and nostrils: enough to read as a nose at 16 pixels."""
    tip_y = identity.eye_y + identity.nose_length
    half_width = identity.nose_width / 2
    shadow = identity.skin * 0.72
    bridge = np.array([
        (_FACE_CENTER_X - 0.012, identity.eye_y + 0.02),
        (_FACE_CENTER_X - 0.016, tip_y - 0.035),
        (_FACE_CENTER_X - half_width * 0.75, tip_y - 0.004),
    ])
    painter.stroke(bridge, shadow, 0.008)
    tip = _ellipse(_FACE_CENTER_X, tip_y - 0.005, half_width * 0.55, 0.018)
    painter.fill(tip, identity.skin * 1.05)  # the tip catches the light
    underside = _ellipse(_FACE_CENTER_X, tip_y - 0.006, half_width, 0.014, 0.15 * math.pi,
                         0.85 * math.pi, 9)
    painter.stroke(underside, shadow, 0.006)
    for side in (-1.0, 1.0):
        nostril = _ellipse(_FACE_CENTER_X + side * half_width * 0.5, tip_y + 0.004,
                           half_width * 0.22, 0.007)
        painter.fill(nostril, identity.skin * 0.4)


def _paint_mouth(painter: _Painter, identity: _Identity, conditions: _Conditions,
                 mouth_y: float) -> None:
    """Lips whose corners rise with the smile; lip redness is a (soft) gender cue."""
    half_width = identity.mouth_half_width * (1.0 + 0.1 * conditions.smile)
    corner_lift = 0.016 * conditions.smile
    x = np.linspace(-1.0, 1.0, 15)
    # The line where the lips meet: corners lift and the middle drops slightly as the person smiles.
    seam_y = mouth_y - corner_lift * x ** 2 + 0.004 * conditions.smile
    seam = np.stack([_FACE_CENTER_X + half_width * x, seam_y], axis=1)
    bow = 1.0 - 0.35 * np.exp(-(x * 6) ** 2)  # the dip of the Cupid's bow
    upper_edge = np.stack([_FACE_CENTER_X + half_width * x,
                           seam_y - identity.upper_lip * (1 - x ** 2) ** 0.6 * bow], axis=1)
    lower_edge = np.stack([_FACE_CENTER_X + half_width * x,
                           seam_y + identity.lower_lip * (1 - x ** 2) ** 0.7], axis=1)
    painter.fill(np.concatenate([upper_edge, seam[::-1]]), identity.lip_colour * 0.9)
    painter.fill(np.concatenate([seam, lower_edge[::-1]]), identity.lip_colour)
    painter.stroke(seam, identity.lip_colour * 0.45, 0.006)


def _paint_face(canvas: np.ndarray, identity: _Identity, conditions: _Conditions) -> None:
    """Draws one complete face onto an RGB uint8 canvas, back to front."""
    _paint_background(canvas, conditions)
    painter = _Painter(canvas, conditions)
    _paint_shoulders_and_neck(painter, identity, conditions)
    _paint_back_hair(painter, identity)
    _paint_ears(painter, identity)
    _paint_face_skin(painter, identity)
    _paint_hair_cap(painter, identity)
    mouth_y = identity.eye_y + identity.nose_length + identity.mouth_y_offset
    _paint_facial_hair(painter, identity, mouth_y)
    if identity.mole is not None:
        painter.fill(_ellipse(*identity.mole, 0.008, 0.008, num_points=10), identity.skin * 0.45)
    _paint_eyes_and_brows(painter, identity, conditions)
    _paint_nose(painter, identity)
    _paint_mouth(painter, identity, conditions, mouth_y)


def _apply_lighting_and_noise(image: np.ndarray, conditions: _Conditions,
                              rng: np.random.Generator) -> np.ndarray:
    """Scales brightness with a left-right gradient (a side light) and adds sensor noise."""
    width = image.shape[1]
    ramp = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
    lit = image * (conditions.brightness * (1.0 + conditions.light_gradient * ramp))
    noise = rng.normal(0.0, conditions.noise_std, size=image.shape).astype(np.float32)
    return np.clip(lit + noise, 0.0, 1.0)


def _check_int_at_least(name: str, value, minimum: int = 1) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def make_faces(num_identities: int, images_per_identity: int, image_size: int, channels: int,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Draws a deterministic set of synthetic faces.

    Args:
        num_identities: Number of distinct people. Identity ``k`` has the same traits whatever
            this number is.
        images_per_identity: Images drawn of each person.
        image_size: Height and width of each square image, at least 16.
        channels: 1 for greyscale or 3 for RGB.
        seed: Non-negative seed; the same arguments always give byte-identical arrays.

    Returns:
        A dict with ``"image"``: float32 [N, image_size, image_size, channels] in [0, 1];
        ``"male"``: int64 [N], 1 for male; ``"identity"``: int64 [N] in 0..num_identities-1;
        ``"age"``: int64 [N] years in 5..80; ``"race"``: int64 [N] codes 0..4 (see the module
        docstring); where N = num_identities * images_per_identity, ordered identity-major
        (all images of identity 0 first).

    Raises:
        ValueError: If an argument is out of range; the message names it.
    """
    _check_int_at_least("num_identities", num_identities)
    _check_int_at_least("images_per_identity", images_per_identity)
    _check_int_at_least("image_size", image_size, _MIN_IMAGE_SIZE)
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    _check_int_at_least("seed", seed, 0)

    count = num_identities * images_per_identity
    canvas_size = max(_MIN_CANVAS, _SUPERSAMPLE * image_size)
    canvas = np.empty((canvas_size, canvas_size, 3), np.uint8)
    images = np.empty((count, image_size, image_size, channels), np.float32)
    male, age, race = (np.empty(count, np.int64) for _ in range(3))
    identities = np.repeat(np.arange(num_identities, dtype=np.int64), images_per_identity)
    for identity_index in range(num_identities):
        identity = _draw_identity(_identity_rng(seed, identity_index))
        for image_index in range(images_per_identity):
            rng = _image_rng(seed, identity_index, image_index)
            conditions = _draw_conditions(rng)
            _paint_face(canvas, identity, conditions)
            small = cv2.resize(canvas, (image_size, image_size), interpolation=cv2.INTER_AREA)
            rgb = _apply_lighting_and_noise(small.astype(np.float32) / 255.0, conditions, rng)
            position = identity_index * images_per_identity + image_index
            if channels == 1:
                images[position, ..., 0] = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            else:
                images[position] = rgb
            male[position] = identity.male
            age[position], race[position] = identity.age, identity.race
    return {"image": images, "male": male, "identity": identities, "age": age, "race": race}
