"""Photo files for the dataset tests: JPEGs of a known grey level, and a UTKFace folder."""

import cv2
import numpy as np

from semiadv.config import DataConfig


def write_jpeg(path, value, size=40, gray=False):
    """Writes a JPEG of grey level `value` (top half greener in colour) and returns `path`."""
    image = np.full((size, size) if gray else (size, size, 3), value, np.uint8)
    if not gray:
        image[: size // 2, :, 1] = 255 - value  # Not flat: the resize must keep its layout.
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


GOOD_UTKFACE = {
    # name: (our male label, grey value drawn in the image)
    "20_0_0_20170110224238891.jpg.chip.jpg": (1, 20),
    "21_1_0_20170110224238892.jpg.chip.jpg": (0, 40),
    "22_0_1_20170110224238893.jpg.chip.jpg": (1, 60),
    "23_1_2_20170110224238894.jpg.chip.jpg": (0, 80),
    "24_1_3_20170110224238895.jpg.chip.jpg": (0, 100),
    "25_0_4_20170110224238896.jpg.chip.jpg": (1, 120),
    "116_1_4_20170110224238897.jpg.chip.jpg": (0, 140),
    # The real oddities that still say age, gender and race: kept.
    "24_0_1_20170116220224657 .jpg.chip.jpg": (1, 160),
    "55_0_0_20170116232725357jpg.chip.jpg": (1, 180),
    "14_0_0_2017011022340900.jpg.chip.jpg": (1, 200),  # a 16-digit date
    "28_1_2_201701161846515488.jpg.chip.jpg": (0, 220),  # an 18-digit date
    # All four fields there, the gender readable: kept, the unreadable field -1.
    "x_0_0_20170110224238898.jpg.chip.jpg": (1, 240),
    "33_1_7_20170110224238899.jpg.chip.jpg": (0, 0),
}
# The (age, race) of each GOOD_UTKFACE name, -1 unknown: what the loader must read.
UTKFACE_AGE_RACE = {
    "20_0_0_20170110224238891.jpg.chip.jpg": (20, 0),
    "21_1_0_20170110224238892.jpg.chip.jpg": (21, 0),
    "22_0_1_20170110224238893.jpg.chip.jpg": (22, 1),
    "23_1_2_20170110224238894.jpg.chip.jpg": (23, 2),
    "24_1_3_20170110224238895.jpg.chip.jpg": (24, 3),
    "25_0_4_20170110224238896.jpg.chip.jpg": (25, 4),
    "116_1_4_20170110224238897.jpg.chip.jpg": (116, 4),
    "24_0_1_20170116220224657 .jpg.chip.jpg": (24, 1),
    "55_0_0_20170116232725357jpg.chip.jpg": (55, 0),
    "14_0_0_2017011022340900.jpg.chip.jpg": (14, 0),
    "28_1_2_201701161846515488.jpg.chip.jpg": (28, 2),
    "x_0_0_20170110224238898.jpg.chip.jpg": (-1, 0),
    "33_1_7_20170110224238899.jpg.chip.jpg": (33, -1),
}
# A field is missing (the real three lack the race): which number is the gender is a guess, so
# these are skipped.
MALFORMED_UTKFACE = (
    "39_1_20170116174525125.jpg.chip.jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
)
# Files with good names that are not usable images: empty, truncated, text.
UNUSABLE_UTKFACE = ("30_0_0_20170110224238000.jpg.chip.jpg",
                    "31_0_0_20170110224238001.jpg.chip.jpg",
                    "32_1_0_20170110224238002.jpg.chip.jpg")


def write_utkface_folder(folder):
    """Fills `folder` with GOOD_UTKFACE, MALFORMED_UTKFACE, UNUSABLE_UTKFACE and a text file."""
    folder.mkdir()
    for name, (_, value) in GOOD_UTKFACE.items():
        write_jpeg(folder / name, value)
    for name in MALFORMED_UTKFACE:
        write_jpeg(folder / name, 250)
    empty, truncated, text = UNUSABLE_UTKFACE
    (folder / empty).write_bytes(b"")
    whole = write_jpeg(folder / truncated, 10).read_bytes()
    (folder / truncated).write_bytes(whole[: len(whole) // 2])
    (folder / text).write_text("not a photo\n")
    (folder / "notes.txt").write_text("ignored: not an image extension\n")
    return folder


def utkface_config(folder, **overrides):
    """A 16x16 config of a `utkface:` spec, everything in the train split."""
    values = dict(dataset=f"utkface:{folder}", image_size=16, batch_size=4,
                  validation_fraction=0.0, test_fraction=0.0)
    return DataConfig(**{**values, **overrides})
