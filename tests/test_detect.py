"""Face detection and alignment on real photos (scikit-image), real multi-face frames and photos with no face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferkit.errors import FerkitError
from ferkit.testing.media import astronaut, camera, iou, multi_face_frame, no_face_images
from ferkit.vision.align import align_faces, check_preprocess, enhance, eye_angle
from ferkit.vision.crop import box_crop, face_crop
from ferkit.vision.detect import Face, create_detector, list_detectors

ASTRONAUT_FACE_BOX = (178, 57, 95, 120)  # RetinaFace's box, checked by eye


@pytest.fixture(scope="module")
def retina():
    return create_detector("retinaface", threads=1)


@pytest.fixture(scope="module")
def haar():
    return create_detector("haar")


def test_backends_are_listed_and_unknown_names_refused():
    assert {"retinaface", "haar"} <= set(list_detectors())
    with pytest.raises(FerkitError, match="unknown face detector"):
        create_detector("nope")
    with pytest.raises(FerkitError):
        create_detector("retinaface", threshold=1.5)


def test_retinaface_finds_the_astronaut_with_five_landmarks(retina):
    faces = retina.detect(astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert iou(face.box, ASTRONAUT_FACE_BOX) > 0.8 and face.score > 0.9
    x, y, w, h = face.box
    marks = face.landmarks
    assert marks.shape == (5, 2)
    assert np.all((marks[:, 0] > x) & (marks[:, 0] < x + w) & (marks[:, 1] > y) & (marks[:, 1] < y + h))
    left, right = face.eyes
    assert left[0] < right[0]
    assert max(left[1], right[1]) < marks[2, 1] < min(marks[3, 1], marks[4, 1])  # eyes above nose above mouth


def test_retinaface_finds_the_turned_face_of_the_cameraman(retina, haar):
    faces = retina.detect(camera())  # gray input, face turned to the side
    assert len(faces) == 1 and faces[0].score > 0.9
    x, y, w, h = faces[0].box
    assert 180 < x + w / 2 < 270 and 100 < y + h / 2 < 200


@pytest.mark.parametrize("name", ["retinaface", "haar"])
def test_no_face_in_photos_without_faces(name, retina, haar):
    detector = retina if name == "retinaface" else haar
    for image in no_face_images():
        assert detector.detect(image) == []


def test_all_faces_of_a_multi_face_frame(retina):
    frame, regions = multi_face_frame()
    faces = retina.detect(frame)
    assert len(faces) == 4
    for region in regions:  # one face inside every pasted photo
        rx, ry, rw, rh = region
        inside = [f for f in faces
                  if rx <= f.box[0] + f.box[2] / 2 <= rx + rw and ry <= f.box[1] + f.box[3] / 2 <= ry + rh]
        assert len(inside) == 1
    areas = [f.box[2] * f.box[3] for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_haar_finds_the_astronaut_without_landmarks(haar):
    faces = haar.detect(astronaut())
    assert len(faces) == 1 and faces[0].landmarks is None and faces[0].eyes is None
    assert iou(faces[0].box, ASTRONAUT_FACE_BOX) > 0.5


def test_threshold_and_minimum_face_size(retina):
    frame, _ = multi_face_frame()
    assert len(create_detector("retinaface", min_face=53, threads=1).detect(frame)) == 3  # the small face goes
    assert create_detector("retinaface", min_face=200, threads=1).detect(astronaut()) == []
    scores = sorted(f.score for f in retina.detect(frame))
    strict = create_detector("retinaface", threshold=(scores[0] + scores[-1]) / 2, threads=1).detect(frame)
    assert 0 < len(strict) < 4


def test_any_image_format_and_size(retina):
    image = astronaut()
    for variant in (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.cvtColor(image, cv2.COLOR_BGR2BGRA),
                    image.astype(np.uint16) * 257):
        assert len(retina.detect(variant)) == 1
    big = cv2.resize(image, (2048, 2048))  # scaled down to 640 for detection, boxes scaled back
    faces = retina.detect(big)
    assert len(faces) == 1 and iou(faces[0].box, tuple(4 * v for v in ASTRONAUT_FACE_BOX)) > 0.7
    assert retina.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert retina.detect(np.zeros((5, 300), np.uint8)) == []


def test_alignment_levels_the_eyes(retina):
    image = astronaut()
    upright = retina.detect(image)[0]
    rotated_image = cv2.warpAffine(image, cv2.getRotationMatrix2D((256, 256), 20, 1.0), (512, 512),
                                   borderMode=cv2.BORDER_REPLICATE)
    rotated = retina.detect(rotated_image)[0]
    assert abs(eye_angle(rotated) - (eye_angle(upright) - 20)) < 5
    a = align_faces(image, [upright])[0].astype(float)
    b = align_faces(rotated_image, [rotated])[0].astype(float)
    assert a.shape == b.shape == (48, 48)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.85  # the rotated face is brought back upright
    unaligned = align_faces(rotated_image, [rotated], align=False)[0].astype(float)
    assert np.corrcoef(a.ravel(), unaligned.ravel())[0, 1] < np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_box_crop_is_the_training_crop_on_a_whole_frame():
    gray = cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY)[30:190, 170:330]
    crop = box_crop(gray, (0, 0, 160, 160), scale=1.0, shift=0.0)
    reference = face_crop(gray)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - reference.astype(int)).mean() < 3
    fer_like = face_crop(gray)
    assert np.array_equal(box_crop(fer_like, (0, 0, 48, 48), scale=1.0, shift=0.0), fer_like)


def test_crop_without_landmarks_and_at_the_border():
    image = astronaut()
    crops = align_faces(image, [Face((480, 490, 60, 60), 0.9), Face((0, 0, 10, 10), 0.9)])
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8
    assert align_faces(image, []).shape == (0, 48, 48)


def test_preprocessing_options():
    crop = align_faces(astronaut(), [Face(ASTRONAUT_FACE_BOX, 1.0)])[0]
    dark = (crop * 0.3).astype(np.uint8)
    assert check_preprocess("none") == () and check_preprocess("clahe,gamma") == ("clahe", "gamma")
    for option in ("equalize", "clahe", "gamma", "smooth"):
        out = enhance(dark, [option])
        assert out.shape == (48, 48) and out.dtype == np.uint8
    assert enhance(dark, ["gamma"]).mean() > dark.mean() + 40
    assert enhance(dark, ["equalize"]).std() > dark.std() * 2
    with pytest.raises(FerkitError, match="unknown preprocessing"):
        check_preprocess("sharpen")
