"""A folder of photos for the tests of semiadv-beam-perturb (its pipeline and its binary)."""

from semiadv.data import synthetic
from semiadv.utils import imageio

# The names of the photos that can be perturbed, in write order.
GOOD = ["a.png", "b.png", "c.jpg", "sub/d.png", "sub/deeper/e.jpg", "f.png"]


def write_photos(folder, size):
    """Synthetic size x size faces as PNG/JPEG (some in sub-folders), a corrupt PNG, a text
    '.jpg' and a '.txt' file into `folder`; returns the names of the good photos."""
    faces = synthetic.make_faces(3, 3, size, 3)["image"]
    for name, face in zip(GOOD, faces):
        imageio.write_image(folder / name, face)
    good = (folder / "a.png").read_bytes()
    (folder / "corrupt.png").write_bytes(good[: len(good) // 2])
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "readme.txt").write_text("not an image name: ignored, as by semiadv-perturb")
    return list(GOOD)
