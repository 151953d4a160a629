"""Training on your own photos: a folder set of classes of your own naming (focused/, bored/, confused/), end to end.

The set is built from real faces (scikit-image's photos, cut, mirrored and re-lit as conftest's skimage_crops does)
written as image files. A tiny model trains one epoch on it; its labels must then travel through the checkpoint,
the ONNX export, `ferkit predict`, the Recognizer and the REST API, and `ferkit evaluate` must score such sets with
them (and say so when the images scored are the ones the model trained on).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import skimage_crops

from ferkit.classifier.checkpoint import load_checkpoint
from ferkit.cli import main
from ferkit.data import load_dataset
from ferkit.testing.media import astronaut
from ferkit.train.config import TrainConfig
from ferkit.train.engine import train

CLASSES = ("focused", "bored", "confused")
LABELS = ("bored", "confused", "focused")  # the folder names, sorted

# starlette >= 1.x asks for httpx2 under its TestClient; httpx works the same here
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def write_set(root: Path, classes=CLASSES, per_class: int = 8, offset: int = 0) -> Path:
    """root/CLASS/NN.png: real face crops, each class its own faces, upscaled to 96×96 as a photo would be."""
    crops = skimage_crops(48)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            crop = crops[(offset + c * per_class + i) % len(crops)]
            assert cv2.imwrite(str(root / name / f"{i:02d}.png"), cv2.resize(crop, (96, 96)))
    return root


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """(data folder, run folder, the run's log lines): one epoch of simple_cnn on 24 faces of three own classes."""
    root = tmp_path_factory.mktemp("own")
    data = write_set(root / "faces")
    config = TrainConfig(model="simple_cnn", data=str(data), epochs=1, batch_size=4, optimizer="adam", lr=1e-3,
                         progress=False, threads=1)
    lines: list[str] = []
    train(config, root / "run", log=lines.append)
    return data, root / "run", lines


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_the_checkpoint_carries_the_folder_names_and_the_split_is_called_validation(own_run):
    data, run, lines = own_run
    info = load_checkpoint(run / "best.pt").info
    assert info.labels == LABELS
    assert load_checkpoint(run / "best.pt").build_model()(torch.zeros(2, 1, 48, 48)).shape == (2, 3)  # 3 outputs
    assert info.metrics["val_split"] == "validation"
    assert info.trained_on == {"data": str(data.resolve()), "split": None}
    log = "\n".join(lines)
    assert f"3 classes ({', '.join(LABELS)})" in log
    assert "(validation)" in log and "validation loss" in log and "PublicTest" not in log
    assert (run / "history.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")


def test_export_predict_recognizer_and_rest_api_show_the_labels(own_run, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from ferkit import Recognizer
    from ferkit.classifier.onnx_classifier import OnnxClassifier
    from ferkit.web.app import create_app

    _, run, _ = own_run
    onnx = tmp_path / "own.onnx"
    assert main(["export", "--model", str(run), "--out", str(onnx)]) == 0
    assert OnnxClassifier(onnx).labels == LABELS
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut())
    out = tmp_path / "faces.json"
    capsys.readouterr()
    assert main(["predict", str(photo), "--model", str(onnx), "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert records and all(tuple(r["probabilities"]) == LABELS and r["emotion"] in LABELS for r in records)
    assert any(label in capsys.readouterr().out for label in LABELS)

    recognizer = Recognizer(model=str(run), threads=1)
    assert recognizer.labels == LABELS
    assert tuple(recognizer.predict(astronaut())[0]["probabilities"]) == LABELS

    ok, body = cv2.imencode(".png", astronaut())
    with TestClient(create_app(model=str(run), workers=1, threads=1, scratch_root=tmp_path)) as client:
        reply = client.post("/api/v1/predict", files={"file": ("a.png", body.tobytes(), "image/png")})
    assert reply.status_code == 200, reply.text
    faces = reply.json()["faces"]
    assert faces and tuple(faces[0]["probabilities"]) == LABELS and faces[0]["emotion"] in LABELS


def test_evaluating_the_training_folder_warns_and_uses_the_sets_labels(own_run, tmp_path, capsys):
    data, run, _ = own_run
    report_path = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run), "--data", str(data), "--json", str(report_path)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "trained on" in warnings[0] and "training images" in warnings[0]
    report = json.loads(report_path.read_text())
    assert report["labels"] == list(LABELS) and report["count"] == 24 and report["split"] == "all"
    assert np.array(report["confusion_matrix"]).shape == (3, 3) and np.sum(report["confusion_matrix"]) == 24
    assert {name: row["support"] for name, row in report["per_class"].items()} == dict.fromkeys(LABELS, 8)
    assert Path(str(report_path.with_suffix("")) + "_confusion.png").stat().st_size > 0
    # the same folder reached by another path is still the training folder
    assert main(["evaluate", "--model", str(run / "best.pt"), "--data", str(data / ".." / "faces")]) == 0
    assert "warning:" in capsys.readouterr().err


def test_a_held_out_test_folder_is_scored_with_the_models_labels_and_no_warning(own_run, tmp_path, capsys):
    _, run, _ = own_run
    held_out = tmp_path / "held_out"
    write_set(held_out / "train", per_class=3)
    write_set(held_out / "test", classes=("Bored", "focused"), per_class=4, offset=20)  # a class may be missing
    report_path = tmp_path / "test.json"
    assert main(["evaluate", "--model", str(run), "--data", str(held_out), "--split", "test",
                 "--json", str(report_path)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    report = json.loads(report_path.read_text())
    assert report["split"] == "test" and report["count"] == 8 and report["labels"] == list(LABELS)
    assert {name: row["support"] for name, row in report["per_class"].items()} == {"bored": 4, "confused": 0,
                                                                                  "focused": 4}
    assert "(test," in captured.out


def test_labels_that_do_not_match_give_one_line(own_run, tmp_path, capsys):
    _, run, _ = own_run
    other = write_set(tmp_path / "other", classes=("focused", "sleepy"), per_class=2)
    assert main(["evaluate", "--model", str(run), "--data", str(other)]) == 2
    line = _error_line(capsys)
    assert "'sleepy' not among the model's labels (bored, confused, focused)" in line
    # a FER2013 model on the own classes, and the own model on FER2013-named folders: one line each
    assert main(["evaluate", "--model", "fast", "--data", str(other)]) == 2
    assert "'focused' is not one of the model's labels (angry, disgust" in _error_line(capsys)
    fer_named = write_set(tmp_path / "fer_named", classes=("happy", "sad"), per_class=2)
    assert main(["evaluate", "--model", str(run), "--data", str(fer_named)]) == 2
    assert "not among the model's labels" in _error_line(capsys)


def test_a_single_class_of_its_own_is_refused_in_one_line(tmp_path, capsys):
    lonely = write_set(tmp_path / "lonely", classes=("focused",), per_class=2)
    assert main(["train", "--model", "simple_cnn", "--data", str(lonely), "--out", str(tmp_path / "run")]) == 2
    assert "one class folder (focused/): a classifier needs at least two classes" in _error_line(capsys)


def test_class_names_sort_case_aside_and_numbers_by_value(tmp_path):
    root = write_set(tmp_path / "set", classes=("level10", "Level2", "level2", "level1"), per_class=1)
    faces = load_dataset(root)
    assert faces.label_names == ("level1", "Level2", "level10")  # Level2/ and level2/ are one class
    assert faces.class_counts().tolist() == [1, 2, 1]
    digits = load_dataset(write_set(tmp_path / "digits", classes=("0", "3", "6"), per_class=1))
    assert digits.label_names[3] == "happy" and digits.num_classes == 7  # 0..6 stay FER2013's classes


def test_a_split_layout_names_its_splits_as_the_user_does(tmp_path):
    from ferkit.train.objective import split_names

    root = tmp_path / "split"
    write_set(root / "train", per_class=2)
    write_set(root / "val", per_class=1)
    faces = load_dataset(root)
    assert split_names(faces, TrainConfig()) == ("training", "validation")
    assert faces.split_name("PrivateTest") == "test"
    flat = load_dataset(write_set(tmp_path / "flat", per_class=2))
    assert split_names(flat, TrainConfig()) == ("training", "validation")


def test_calibrate_fits_on_a_folder_sets_val_folder(own_run, tmp_path, capsys):
    data, run, _ = own_run
    layout = tmp_path / "layout"
    write_set(layout / "train", per_class=2)
    write_set(layout / "val", per_class=3, offset=7)
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--model", str(run), "--data", str(layout), "--split", "val", "--out", str(out)]) == 0
    assert "fitted on 9 validation images" in capsys.readouterr().out
    assert load_checkpoint(out).info.calibration["split"] == "validation" and load_checkpoint(out).info.labels == LABELS
    assert main(["calibrate", "--model", str(run), "--data", str(data), "--out", str(out)]) == 2
    assert "no validation split to fit the temperature on" in _error_line(capsys)


def test_report_on_the_training_folder_warns_and_uses_the_sets_labels(own_run, tmp_path, capsys):
    data, run, _ = own_run
    out = tmp_path / "report"
    assert main(["report", "--model", str(run), "--data", str(data), "--out", str(out), "--subset", "12",
                 "--robustness-size", "12", "--perturbations", "gamma", "--preprocess", "none", "--no-progress",
                 "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert sum("warning:" in line and "training images" in line for line in captured.err.splitlines()) == 1
    summary = json.loads((out / "report.json").read_text())["models"][0]
    assert summary["metrics"]["labels"] == list(LABELS) and summary["metrics"]["count"] == 12


def test_a_teacher_of_other_classes_is_refused_even_with_as_many(own_run, tmp_path, capsys):
    data, run, _ = own_run
    other = write_set(tmp_path / "other", classes=("calm", "tense", "tired"), per_class=4)
    argv = ["train", "--model", "simple_cnn", "--data", str(other), "--out", str(tmp_path / "student"), "--epochs",
            "1", "--batch-size", "4", "--no-progress", "--set", f"teachers=[{run}]"]
    assert main(argv) == 2
    assert "predicts bored, confused, focused, not this data's calm, tense, tired" in _error_line(capsys)
