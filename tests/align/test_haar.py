"""Tests for semiadv.align.haar: OpenCV's cascades, their shared scans and face confirmation."""

from pathlib import Path

import cv2
import numpy as np
from _align_photos import CELEBA, celeba_sample, needs_celeba

from semiadv.align import haar
from semiadv.utils import imageio


def test_haar_passes_sharing_a_scan_find_what_separate_scans_find(shared_faces):
    # alt2 at min_neighbors 3 then 1 share one scan: the boxes must be detectMultiScale's own.
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"))
    compared = found = 0
    for path in celeba_sample(shared_faces, 10):
        gray = cv2.equalizeHist(cv2.cvtColor(imageio.read_image(path), cv2.COLOR_RGB2GRAY))
        raw = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=0, minSize=(20, 20))
        for min_neighbors in (1, 3):
            expected = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(20, 20))
            ours = haar.group_hits(raw, min_neighbors)
            # OpenCV may round a group's mean a pixel differently from cv2.groupRectangles.
            assert len(ours) == len(expected), path
            if len(expected):
                np.testing.assert_allclose(np.sort(np.asarray(ours), axis=0), np.sort(np.asarray(expected), axis=0), atol=1)
            compared += 1
            found += len(expected) > 0
    assert compared == 20 and found >= 12, found


@needs_celeba
def test_haar_confirms_a_face_box_only_where_the_face_is():
    detector = haar.HaarFaceDetector()
    confirmed, elsewhere, faces = 0, 0, 0
    for path in sorted(CELEBA.glob("*/*.jpg"))[::40][:20]:
        gray = cv2.cvtColor(imageio.read_image(path), cv2.COLOR_RGB2GRAY)
        boxes = detector.detect_faces(gray)
        if not boxes:
            continue
        faces += 1
        x, y, width, height = max(boxes, key=lambda box: box[2])
        confirmed += detector.confirms_face(gray, (x, y, width, height))
        # The same box once the face is gone (painted over with its mean grey).
        erased = gray.copy()
        erased[y:y + height, x:x + width] = int(erased[y:y + height, x:x + width].mean())
        elsewhere += detector.confirms_face(erased, (x, y, width, height))
    assert faces >= 15 and confirmed >= faces - 1 and elsewhere == 0, (faces, confirmed, elsewhere)
