"""Recognizer and `ferkit predict` on real photos: one face, several faces, no face, and every kind of bad file."""

from __future__ import annotations

import csv
import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from ferkit import Recognizer
from ferkit.cli import main
from ferkit.testing.media import (
    DEFAULT_MODEL,
    NO_DEFAULT,
    astronaut,
    camera,
    iou,
    make_checkpoint,
    multi_face_frame,
    no_face_images,
)

KEYS = {"source", "frame", "face", "box", "emotion", "score", "probabilities"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def recognizer(tiny_model):
    return Recognizer(tiny_model, threads=1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.jpg"), astronaut())
    cv2.imwrite(str(folder / "group.png"), multi_face_frame()[0])
    cv2.imwrite(str(folder / "coffee.webp"), no_face_images()[0])
    cv2.imwrite(str(folder / "cameraman.bmp"), camera())
    return folder


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_one_face_record_in_the_design_schema(recognizer):
    faces = recognizer.predict(astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert set(face) == KEYS and face["source"] == "<array>" and face["frame"] is None
    assert iou(face["box"], (178, 57, 95, 120)) > 0.8
    assert len(face["probabilities"]) == 7 and abs(sum(face["probabilities"].values()) - 1) < 1e-4
    assert face["emotion"] == max(face["probabilities"], key=face["probabilities"].get)


def test_paths_bytes_rgb_and_gray_give_the_same_face(recognizer, photos):
    from_array = recognizer.predict(cv2.imread(str(photos / "astronaut.jpg")))
    from_path = recognizer.predict(photos / "astronaut.jpg")
    from_bytes = recognizer.predict((photos / "astronaut.jpg").read_bytes())
    from_rgb = recognizer.predict(cv2.cvtColor(cv2.imread(str(photos / "astronaut.jpg")), cv2.COLOR_BGR2RGB), rgb=True)
    assert from_path[0]["source"].endswith("astronaut.jpg")
    for other in (from_path, from_bytes, from_rgb):
        assert other[0]["box"] == from_array[0]["box"] and other[0]["probabilities"] == from_array[0]["probabilities"]
    assert len(recognizer.predict(camera())) == 1


def test_no_face_gives_an_empty_result(recognizer):
    for image in no_face_images():
        assert recognizer.predict(image) == []
    assert recognizer.predict(np.full((1, 1, 3), 200, np.uint8)) == []


def test_all_faces_of_a_frame_in_one_classifier_call(recognizer):
    calls = []
    original = recognizer.classifier.predict_proba

    def counting(crops, **kw):
        calls.append(len(crops))
        return original(crops, **kw)

    recognizer.classifier.predict_proba = counting
    try:
        faces = recognizer.predict(multi_face_frame()[0])
        batch = recognizer.predict_batch([astronaut(), multi_face_frame()[0], no_face_images()[0]],
                                         sources=["a", "b", "c"])
    finally:
        recognizer.classifier.predict_proba = original
    assert len(faces) == 4 and calls == [4, 5]
    assert [len(r) for r in batch] == [1, 4, 0]
    assert [f["box"] for f in batch[1]] == [f["box"] for f in faces]
    assert all(abs(a - b) < 1e-5 for f, g in zip(batch[1], faces)
               for a, b in zip(f["probabilities"].values(), g["probabilities"].values()))


def test_faces_come_left_to_right_numbered_from_one(recognizer):
    frame, regions = multi_face_frame()
    faces = recognizer.predict(frame)
    assert [f["face"] for f in faces] == [1, 2, 3, 4]
    lefts = [f["box"][0] for f in faces]
    assert lefts == sorted(lefts)
    # each numbered face is the pasted head it should be: regions sorted by their left edge
    by_left = sorted(regions)
    assert all(abs(f["box"][0] - r[0]) < r[2] / 2 for f, r in zip(faces, by_left)), (lefts, by_left)
    largest = Recognizer.__new__(Recognizer)
    largest.__dict__.update(recognizer.__dict__, max_faces=2)
    kept = largest.predict(frame)  # max_faces keeps the two largest heads, still in reading order
    assert [f["face"] for f in kept] == [1, 2] and kept[0]["box"][0] < kept[1]["box"][0]
    assert {tuple(f["box"]) for f in kept} < {tuple(f["box"]) for f in faces}


def test_torch_and_onnx_backends_agree(tiny_model, recognizer):
    torch_faces = Recognizer(tiny_model, backend="torch").predict(multi_face_frame()[0])
    onnx_faces = recognizer.predict(multi_face_frame()[0])
    for a, b in zip(torch_faces, onnx_faces):
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) < 1e-4


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason=NO_DEFAULT)
def test_the_shipped_model_sees_the_astronaut_smile():
    recognizer = Recognizer()  # the shipped default model, no network
    faces = recognizer.predict(astronaut())
    assert len(faces) == 1 and faces[0]["emotion"] == "happy", faces
    group = recognizer.predict(multi_face_frame()[0])
    assert len(group) == 4
    astronauts = [f for f in group if f["box"][1] > 300 or f["box"][0] < 200 or f["box"][0] > 400]
    assert all(f["emotion"] == "happy" for f in astronauts), astronauts


def test_cli_images_folders_json_csv_and_annotations(tiny_model, photos, tmp_path, capsys):
    out_json, out_csv, annotate = tmp_path / "out.json", tmp_path / "out.csv", tmp_path / "ann"
    code = main(["predict", str(photos), "--model", str(tiny_model), "--json", str(out_json), "--csv", str(out_csv),
                 "--annotate", str(annotate), "--batch-size", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    records = json.loads(out_json.read_text())
    assert all(set(r) == KEYS for r in records)
    by_source = {}
    for r in records:
        by_source.setdefault(r["source"].rsplit("/", 1)[-1], []).append(r)
    assert {k: len(v) for k, v in by_source.items()} == {"astronaut.jpg": 1, "group.png": 4, "cameraman.bmp": 1}
    assert "no face found in 1 image" in captured.err and "coffee.webp" in captured.err
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 6 and {"x", "y", "w", "h", "emotion", "happy"} <= set(rows[0])
    assert (annotate / "group.jpg").is_file() and len(list(annotate.glob("group.face*.png"))) == 4
    assert cv2.imread(str(annotate / "group.face1.png")) is not None
    glob_code = main(["predict", str(photos / "*.jpg"), "--model", str(tiny_model), "--json", str(out_json)])
    assert glob_code == 0 and len(json.loads(out_json.read_text())) == 1


def test_cli_goes_on_past_every_kind_of_bad_file(tiny_model, photos, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "notes.png").write_text("not an image at all")
    ok, encoded = cv2.imencode(".jpg", astronaut())
    (bad / "truncated.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 3])
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    cv2.imwrite(str(bad / "one_pixel.png"), np.full((1, 1, 3), 128, np.uint8))
    (bad / "bomb.png").write_bytes(_png_header_only(30000, 30000))
    out_json = tmp_path / "out.json"
    code = main(["predict", str(photos / "astronaut.jpg"), str(bad), str(tmp_path / "missing.jpg"),
                 "--model", str(tiny_model), "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert len(json.loads(out_json.read_text())) == 1  # the good photo still got its face
    err = captured.err
    assert "empty file" in err and "no such file" in err and "over the limit" in err
    for name in ("notes.png", "corrupt.png", "zero.jpg", "bomb.png"):
        assert name in err
    assert "one_pixel.png" in err.split("could not be read")[0]  # listed as "no face found", not as unreadable


def test_cli_camera_fails_clearly_without_a_camera(tiny_model, capsys):
    code = main(["predict", "--camera", "9", "--model", str(tiny_model), "--no-show", "--max-frames", "2"])
    captured = capsys.readouterr()
    assert code == 2 and "camera 9" in captured.err and "Traceback" not in captured.err
    assert main(["predict", "--model", str(tiny_model)]) == 2
    assert "--camera" in capsys.readouterr().err
