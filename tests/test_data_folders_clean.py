"""Class-folder data sets (real photos of varied size / colour / format, plus broken files) and cleaning."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import face_region, sample_faces

from ferkit.data import load_dataset
from ferkit.data.clean import blank_mask, clean_faceset, leaked_training_mask
from ferkit.data.faceset import FaceSet
from ferkit.data.folders import load_folder
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS, USAGES
from ferkit.vision.crop import face_crop


def _variants():
    """Real face photos in several sizes and colour layouts: (file suffix, array as OpenCV writes it)."""
    astronaut, camera = sample_faces()
    face = face_region(astronaut)                                  # 160×160 BGR
    gray_face = face_region(camera)                                # 110×110 gray
    return {
        "bgr_wide.jpg": cv2.resize(face, (120, 90)),                  # not square: centre-cropped
        "gray_small.png": cv2.resize(gray_face, (40, 40)),            # smaller than 48: upscaled
        "bgra_tall.png": cv2.cvtColor(cv2.resize(face, (70, 150)), cv2.COLOR_BGR2BGRA),
        "gray_large.jpg": cv2.resize(gray_face, (300, 300)),
        "bgr_exact.png": cv2.resize(face, (48, 48)),
        "gray16.png": (cv2.resize(gray_face, (64, 64)).astype(np.uint16) * 257),
    }


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), path
    return path


def _expected_crop(path: Path) -> np.ndarray:
    return face_crop(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))


@pytest.fixture
def named_folders(tmp_path):
    root = tmp_path / "named"
    variants = _variants()
    files = {
        "angry/bgr_wide.jpg": variants["bgr_wide.jpg"],
        "angry/gray_small.png": variants["gray_small.png"],
        "Happy/bgra_tall.png": variants["bgra_tall.png"],
        "Happy/nested/gray_large.jpg": variants["gray_large.jpg"],
        "surprise/bgr_exact.png": variants["bgr_exact.png"],
        "surprise/gray16.png": variants["gray16.png"],
    }
    for name, image in files.items():
        _write(root / name, image)
    (root / "Happy" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no jpeg at all" * 20)
    (root / "surprise" / "empty.png").write_bytes(b"")
    (root / "surprise" / "notes.txt").write_text("not an image, not even looked at")
    return root, files


def test_load_folder_named_classes(named_folders):
    root, files = named_folders
    faces = load_folder(root)
    assert faces.images.dtype == np.uint8 and faces.images.shape == (6, 48, 48)
    assert faces.label_names == EMOTIONS and faces.usage is None
    expected_labels = {"angry": 0, "happy": 3, "surprise": 5}
    assert [Path(s).relative_to(root).as_posix() for s in faces.sources] == sorted(files)  # folder, then file
    for source, label, image in zip(faces.sources, faces.labels, faces.images):
        assert label == expected_labels[Path(source).relative_to(root).parts[0].lower()]
        np.testing.assert_array_equal(image, _expected_crop(Path(source)))
    assert faces.class_counts().tolist() == [2, 0, 0, 2, 0, 2, 0]
    bad = faces.info["bad_files"]
    assert len(bad) == 2
    assert any("corrupt.jpg" in b for b in bad) and any("empty.png" in b for b in bad)
    assert not any("notes.txt" in b for b in bad)
    # the exact-size colour crop is just the gray conversion of the file's own pixels
    exact = faces.images[faces.sources.index(str(root / "surprise" / "bgr_exact.png"))]
    np.testing.assert_array_equal(exact, cv2.cvtColor(_variants()["bgr_exact.png"], cv2.COLOR_BGR2GRAY))


def test_load_folder_strict_raises_on_bad_file(named_folders):
    root, _ = named_folders
    with pytest.raises(FerkitError, match="corrupt.jpg|empty.png"):
        load_folder(root, skip_bad_files=False)


def test_load_folder_digit_layout(tmp_path):
    variants = list(_variants().items())
    for digit in range(7):
        suffix, image = variants[digit % len(variants)]
        _write(tmp_path / str(digit) / f"img.{suffix.split('.')[-1]}", image)
    faces = load_folder(tmp_path)
    assert faces.labels.tolist() == list(range(7))
    assert faces.info["bad_files"] == []
    assert faces.images.shape == (7, 48, 48)


def test_load_folder_split_layout(tmp_path):
    variants = _variants()
    layout = {
        "train/angry/a.jpg": "bgr_wide.jpg", "train/happy/b.png": "gray_small.png",
        "train/happy/c.png": "bgra_tall.png", "val/sad/d.png": "bgr_exact.png", "test/neutral/e.jpg": "gray_large.jpg",
        "test/0/f.png": "gray16.png",
    }
    for name, variant in layout.items():
        _write(tmp_path / name, variants[variant])
    faces = load_dataset(tmp_path)
    by_file = {Path(s).name: (int(lab), USAGES[u]) for s, lab, u in zip(faces.sources, faces.labels, faces.usage)}
    assert by_file == {"a.jpg": (0, "Training"), "b.png": (3, "Training"), "c.png": (3, "Training"),
                       "d.png": (4, "PublicTest"), "e.jpg": (6, "PrivateTest"), "f.png": (0, "PrivateTest")}
    train = faces.split("Training")
    assert len(train) == 3 and train.sources == [s for s in faces.sources if "/train/" in s]
    for source, image in zip(train.sources, train.images):
        np.testing.assert_array_equal(image, _expected_crop(Path(source)))


@pytest.mark.parametrize("name", ["cats", "7", "happy_faces"])
def test_a_class_name_of_its_own_makes_the_folder_names_the_labels(tmp_path, name):
    _write(tmp_path / "angry" / "a.png", _variants()["bgr_exact.png"])
    _write(tmp_path / name / "b.png", _variants()["bgr_exact.png"])
    faces = load_folder(tmp_path)
    assert faces.label_names == tuple(sorted(["angry", name])) and faces.num_classes == 2
    assert {Path(s).parent.name: faces.label_names[i] for s, i in zip(faces.sources, faces.labels)} == {
        "angry": "angry", name: name}
    with pytest.raises(FerkitError, match=rf"class folder\(s\) '{name}' not among the model's labels"):
        load_folder(tmp_path, class_names=("angry", "bored"))
    with pytest.raises(FerkitError, match=rf"class folder '{name}' is not one of the model's labels \(angry, "):
        load_folder(tmp_path, class_names=EMOTIONS)


def test_folder_without_images_raises(tmp_path):
    (tmp_path / "angry").mkdir()
    (tmp_path / "angry" / "readme.txt").write_text("nothing here")
    with pytest.raises(FerkitError, match="no images"):
        load_folder(tmp_path)


def test_folder_with_ferplus_labels_raises(tmp_path):
    _write(tmp_path / "angry" / "a.png", _variants()["bgr_exact.png"])
    with pytest.raises(FerkitError, match="FER\\+"):
        load_dataset(tmp_path, labels="ferplus")


# ------------------------------------------------------------------------------------------- cleaning


def _faceset(images, usages, labels=None):
    images = np.stack(images).astype(np.uint8)
    n = len(images)
    return FaceSet(images=images, labels=np.asarray(labels if labels is not None else np.arange(n) % 7, np.int64),
                   label_names=EMOTIONS, usage=np.array([USAGES.index(u) for u in usages], np.uint8),
                   rows=np.arange(n), info={"bad_rows": 0})


def test_blank_mask(face_crops):
    black = np.zeros((48, 48), np.uint8)
    flat_gray = np.full((48, 48), 128, np.uint8)
    near_flat = flat_gray.copy()
    near_flat[::2] = 130               # range 2: still blank
    low_contrast = flat_gray.copy()
    low_contrast[5, 5] = 131           # range 3: not blank
    images = np.stack([face_crops[0], black, face_crops[1], flat_gray, near_flat, low_contrast])
    assert blank_mask(images).tolist() == [False, True, False, True, True, False]
    assert blank_mask(images, max_range=0).tolist() == [False, True, False, True, False, False]
    assert not blank_mask(face_crops).any()


def test_leaked_training_mask(face_crops):
    c = face_crops
    faces = _faceset([c[0], c[1], c[2], c[1], c[3], c[4], c[4], c[5], c[2]],
                     ["Training", "Training", "Training", "PublicTest", "Training", "Training", "Training",
                      "PrivateTest", "PrivateTest"])
    # c[1] in PublicTest, c[2] in PrivateTest → rows 1 and 2 leak; c[4] twice in Training alone is no leak
    assert leaked_training_mask(faces).tolist() == [False, True, True, False, False, False, False, False, False]
    faces.usage = None
    assert not leaked_training_mask(faces).any()


def test_leak_needs_exact_pixels(face_crops):
    almost = face_crops[1].copy()
    almost[20, 20] ^= 1
    faces = _faceset([almost, face_crops[1]], ["Training", "PublicTest"])
    assert not leaked_training_mask(faces).any()


def test_clean_faceset(face_crops):
    c = face_crops
    black = np.zeros((48, 48), np.uint8)
    images = [c[0], black, c[1], c[2], black, c[1], c[3], black]
    usages = ["Training", "Training", "Training", "Training", "PublicTest", "PublicTest", "PrivateTest",
              "PrivateTest"]
    faces = _faceset(images, usages)
    cleaned = clean_faceset(faces)
    # blank: rows 1, 4, 7 (a blank Training row that also "leaks" counts once, as blank); leaked: row 2
    assert cleaned.rows.tolist() == [0, 3, 5, 6]
    assert cleaned.info["dropped_blank"] == 3 and cleaned.info["dropped_leaked"] == 1
    assert cleaned.info["cleaned"] is True and cleaned.info["bad_rows"] == 0
    assert "cleaned" not in faces.info  # the input FaceSet is left alone
    np.testing.assert_array_equal(cleaned.images, faces.images[[0, 3, 5, 6]])
    np.testing.assert_array_equal(cleaned.labels, faces.labels[[0, 3, 5, 6]])
    np.testing.assert_array_equal(cleaned.usage, faces.usage[[0, 3, 5, 6]])
    again = clean_faceset(cleaned)
    assert len(again) == len(cleaned) and again.info["dropped_blank"] == again.info["dropped_leaked"] == 0


def test_clean_csv_through_load_dataset(tmp_path, fer_rows, write_fer_csv):
    rows = list(fer_rows)
    rows[3] = (rows[3][0], np.zeros((48, 48), np.uint8))
    rows[11] = (rows[11][0], rows[5][1])          # PublicTest row 11 repeats Training row 5
    faces = load_dataset(write_fer_csv(tmp_path / "f.csv", rows), clean=True)
    assert faces.info["dropped_blank"] == 1 and faces.info["dropped_leaked"] == 1
    assert faces.rows.tolist() == [i for i in range(16) if i not in (3, 5)]


BLANK_ROWS = [6458, 7629, 10423, 11286, 13148, 13402, 13988, 15894, 22198, 22927, 28601, 30002]


@pytest.mark.slow
def test_clean_real_data(fer2013_full):
    faces = fer2013_full
    blank = blank_mask(faces.images)
    assert np.flatnonzero(blank).tolist() == BLANK_ROWS
    blank_by_split = {u: int((blank & (faces.usage == i)).sum()) for i, u in enumerate(USAGES)}
    assert blank_by_split == {"Training": 11, "PublicTest": 1, "PrivateTest": 0}
    cleaned = clean_faceset(faces)
    blank_n, leaked_n = cleaned.info["dropped_blank"], cleaned.info["dropped_leaked"]
    by_split = {u: len(faces.split(u)) - len(cleaned.split(u)) for u in USAGES}
    print(f"clean: dropped {blank_n} blank + {leaked_n} leaked Training rows; dropped per split {by_split}")
    assert blank_n == 12
    assert 0 < leaked_n < 3369  # at most every row in a duplicate group (README)
    assert len(cleaned) == len(faces) - blank_n - leaked_n
    assert by_split == {"Training": 11 + leaked_n, "PublicTest": 1, "PrivateTest": 0}
    assert not set(BLANK_ROWS) & set(cleaned.rows.tolist())
    # nothing left in Training has exact pixels that occur in a test split
    train, test = cleaned.split("Training"), faces.images[faces.usage != USAGES.index("Training")]
    test_keys = {img.tobytes() for img in test}
    assert not any(img.tobytes() in test_keys for img in train.images)
