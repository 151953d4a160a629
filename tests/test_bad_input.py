"""The bad-input suite: hostile but fair inputs to the command line, the Python API and the server, each of which
must end in a clean outcome: one clear error (exit code 2, or 1 for `predict` inputs that could not be read, which
lists them) or a JSON 4xx, never a traceback, a hang or a file left half-written.

Every case is one row of a table; a case that regresses fails by name. The files the cases use are real (real csv
rows, real photos, a real checkpoint) and are made once for the module.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import fer_line

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.testing.media import astronaut, make_checkpoint, one_face_frame, write_video


@pytest.fixture(scope="module")
def world(tmp_path_factory, fer_rows, write_fer_csv):
    """Paths the cases name as {key}: data, models, media, and things that are not what they claim to be."""
    root = tmp_path_factory.mktemp("hostile")
    csv = write_fer_csv(root / "fer2013.csv", fer_rows)
    lines = csv.read_text().splitlines()
    (root / "bom.csv").write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())  # Excel's "CSV UTF-8"
    (root / "bad_row.csv").write_text("\n".join([lines[0], lines[1], "9,1 2 3,Training", *lines[2:]]) + "\n")
    (root / "no_pixels.csv").write_text("emotion,Usage\n0,Training\n")
    (root / "not_gzip.csv.gz").write_bytes(b"this is not gzip data")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "notes.jpg").write_text("hello, not a photo")
    (root / "empty.jpg").write_bytes(b"")
    ok, jpeg = cv2.imencode(".jpg", astronaut())
    (root / "cut.jpg").write_bytes(jpeg.tobytes()[:2000])
    (root / "face $x^2$ {y}.jpg").write_bytes(jpeg.tobytes())
    with open(root / "huge.jpg", "wb") as handle:  # sparse: 600 MiB on paper, nothing on disk
        handle.truncate(600 * 2**20)
    (root / "garbage.mp4").write_bytes(b"\x00garbage" * 500)
    write_video(root / "clip.mp4", [one_face_frame(dx=4 * i) for i in range(3)])
    (root / "a_file").write_text("I am a file")
    os.mkfifo(root / "fifo.csv")
    os.mkfifo(root / "fifo.jpg")
    folder = root / "folder" / "happy"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "one.png"), cv2.resize(cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY)[30:190, 170:330],
                                                     (48, 48)))
    (folder / "readme.txt").write_text("not an image")
    (root / "no_classes").mkdir()
    model = make_checkpoint(root / "model.pt", "simple_cnn")
    (root / "text.pt").write_text("not a checkpoint")
    paths = {p.name.replace(".", "_"): str(p) for p in root.iterdir() if " " not in p.name}
    paths.update(root=str(root), csv=str(csv), model=str(model), fifo_csv=str(root / "fifo.csv"),
                 fifo_jpg=str(root / "fifo.jpg"), dollar=str(root / "face $x^2$ {y}.jpg"),
                 unwritable=str(root / "a_file" / "out"))
    return paths


@dataclass(frozen=True)
class Cli:
    argv: str          # the command line after `ferkit`, with {key} naming a file of `world`
    says: str          # what the error line must contain
    code: int = 2


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses a flag's value while parsing: usage, then the error
        code = exit_.code
    return code, capsys.readouterr().err


TRAIN = "train --data {csv} --model simple_cnn --epochs 1 --no-progress --threads 1 --out {root}/runs/x"
CLI_CASES = {
    # training: flags and config values checked where they are parsed, before any data is read
    "train data missing": Cli("train --data {root}/missing.csv --out {root}/runs/a", "no such file"),
    "train data a folder without classes": Cli("train --data {no_classes} --out {root}/runs/b", "no images found"),
    "train batch size 0": Cli(TRAIN + " --batch-size 0", "batch_size must be at least 1"),
    "train epochs 0": Cli(TRAIN + " --epochs 0", "epochs and batch_size must be at least 1"),
    "train negative lr": Cli(TRAIN + " --lr -1", "cannot be negative"),
    "train lr not a number": Cli(TRAIN + " --set lr=abc", "lr must be a number"),
    "train unknown key": Cli(TRAIN + " --set nope=1", "unknown config key"),
    "train unparsable value": Cli(TRAIN + " --set lr=[", "not a valid value"),
    "train bogus device": Cli(TRAIN + " --device bogus", "unknown device 'bogus'"),
    "train out is a file": Cli("train --data {csv} --model simple_cnn --out {a_file}", "is a file"),
    "train unknown model": Cli(TRAIN + " --model transformer_xl", "unknown model 'transformer_xl'"),
    "train width not a number": Cli(TRAIN + " --model vgg --set model_kwargs.width=abc", "width"),
    "train swa outside 0..1": Cli(TRAIN + " --set swa=2", "swa must be"),
    "train config missing": Cli(TRAIN + " --config {root}/missing.yaml", "cannot read config"),
    "train config a list": Cli(TRAIN + " --config {list_yaml}", "must hold a mapping"),
    "train resume with no run": Cli("train --resume --out {root}/runs/none", "no such checkpoint"),
    "train onecycle on a budget": Cli(TRAIN + " --schedule onecycle --time-budget 1", "onecycle"),
    "train progressive side too big": Cli(TRAIN + " --model vgg --set progressive_size=100", "progressive_size"),
    "train unknown tta": Cli(TRAIN + " --set tta=[bogus]", "unknown test-time augmentation"),
    "train unknown augmentation": Cli(TRAIN + " --set augment.nope=1", "unknown augmentation option"),
    "train missing teacher": Cli(TRAIN + " --set teachers=[nosuch]", "unknown model 'nosuch'"),
    "train missing init_from": Cli(TRAIN + " --set init_from=nosuch", "unknown model 'nosuch'"),
    "train bad row names the flag": Cli(TRAIN.replace("{csv}", "{bad_row_csv}"), "--skip-bad-rows"),
    "train a device file": Cli("train --data /dev/zero --model simple_cnn --out {root}/runs/z", "not a regular file"),
    "train not gzip": Cli("train --data {not_gzip_csv_gz} --model simple_cnn --out {root}/runs/g", "cannot read"),
    "train no pixels column": Cli("train --data {no_pixels_csv} --model simple_cnn --out {root}/runs/p", "pixels"),
    "train ferplus without votes": Cli(TRAIN + " --labels ferplus", "FER+ votes file"),
    # evaluation, calibration, reports
    "evaluate missing model": Cli("evaluate --model {root}/nope.pt --data {csv}", "unknown model"),
    "evaluate text as checkpoint": Cli("evaluate --model {text_pt} --data {csv}", "not a readable checkpoint"),
    "evaluate unwritable json": Cli("evaluate --model {model} --data {csv} --json {unwritable}.json", "cannot write"),
    "evaluate strict protocol on fer2013": Cli("evaluate --model {model} --data {csv} --ferplus-test strict",
                                               "not a FER+ model"),
    "evaluate bad row": Cli("evaluate --model {model} --data {bad_row_csv}", "line 3"),
    "calibrate on PrivateTest": Cli("calibrate --model {model} --data {csv} --split PrivateTest", "never fitted"),
    "calibrate negative subset": Cli("calibrate --model {model} --data {csv} --subset -1", "--subset"),
    "report on PublicTest": Cli("report --model {model} --data {csv} --out {root}/r --split PublicTest",
                                "PublicTest is where it is"),
    "report unknown perturbation": Cli("report --model {model} --data {csv} --out {root}/r --perturbations bogus",
                                       "unknown perturbation"),
    # recognition
    "predict nothing to do": Cli("predict", "give image or video files"),
    "predict missing file": Cli("predict {root}/missing.jpg --no-progress", "no such file", 1),
    "predict a device file": Cli("predict /dev/zero --no-progress", "not a regular file", 1),
    "predict a text file named jpg": Cli("predict {notes_jpg} --no-progress", "not an image", 1),
    "predict a truncated jpeg": Cli("predict {cut_jpg} --no-progress", "corrupt or truncated", 1),
    "predict an empty file": Cli("predict {empty_jpg} --no-progress", "empty file", 1),
    "predict a 600 MiB file": Cli("predict {huge_jpg} --no-progress", "over the limit", 1),
    "predict batch size 0": Cli("predict {csv} --batch-size 0", "--batch-size must be at least 1"),
    "predict max frames 0": Cli("predict {clip_mp4} --max-frames 0", "--max-frames must be at least 1"),
    "predict threshold over 1": Cli("predict {dollar} --threshold 2", "threshold must be within 0..1"),
    "predict min face 0": Cli("predict {dollar} --min-face 0", "at least 1 pixel"),
    "predict unknown preprocessing": Cli("predict {dollar} --preprocess bogus", "unknown preprocessing"),
    "predict unknown detector": Cli("predict {dollar} --detector bogus", "unknown face detector"),
    "predict onnx file on torch": Cli("predict {dollar} --backend torch --model {root}/m.onnx",
                                      "only with the onnx backend"),
    "predict unwritable json": Cli("predict {dollar} --quiet --json {unwritable}.json", "cannot write"),
    "predict annotate into a file": Cli("predict {dollar} --quiet --annotate {a_file}", "a_file"),
    "predict crops of a video": Cli("predict --crops {clip_mp4}", "image files only"),
    "predict a garbage video": Cli("predict {garbage_mp4} --no-progress", "garbage.mp4", 1),
    # model tools
    "export opset 3": Cli("export --model {model} --out {root}/m3.onnx --opset 3", "opsets 13 to 20"),
    "export into a file's folder": Cli("export --model {model} --out {unwritable}.onnx", "a_file"),
    "export missing model": Cli("export --model nosuch --out {root}/n.onnx", "unknown model 'nosuch'"),
    "ensemble of one": Cli("ensemble {model} --out {root}/e.pt", "at least two members"),
    "soup of two shapes": Cli("soup default fast --data {csv} --out {root}/s.pt", "cannot average"),
    "augment count 0": Cli("augment --data {csv} --out {root}/g.png --count 0", "must be at least 1"),
    "augment count -3": Cli("augment --data {csv} --out {root}/g.png --count -3", "must be at least 1"),
    "augment versions 0": Cli("augment --data {csv} --out {root}/g.png --versions 0", "must be at least 1"),
    "augment count 1000": Cli("augment --data {csv} --out {root}/g.png --count 1000", "at most 200"),
    "augment bad option value": Cli("augment --data {csv} --out {root}/g.png --set augment.nope=3", "nope"),
    "augment unwritable": Cli("augment --data {csv} --out {unwritable}.png", "cannot write"),
    "evaluate unknown split": Cli("evaluate --model {model} --data {csv} --split Holdout", "invalid choice"),
    "predict unknown tta": Cli("predict {dollar} --tta flop", "unknown test-time augmentation"),
    "serve port out of range": Cli("serve --port 70000", "--port must be within"),
    "serve no workers": Cli("serve --workers 0 --model {model}", "--workers must be at least 1"),
}


@pytest.mark.parametrize("name", CLI_CASES)
def test_the_command_line_answers_bad_input_with_one_clear_line(name, world, capsys):
    case = CLI_CASES[name]
    argv = [part.format(**world) for part in case.argv.split()]
    code, err = _run(argv, capsys)
    assert code == case.code, f"{name}: exit {code}, stderr: {err}"
    assert "Traceback" not in err, err
    assert case.says in err, f"{name}: {case.says!r} not in {err!r}"
    if case.code == 2:  # the error is the last line; argparse's errors follow its one-line usage
        assert err.strip().splitlines()[-1].startswith(("ferkit", "usage")), err


@pytest.mark.parametrize("argv", [["train", "--data", "{fifo_csv}", "--model", "simple_cnn", "--out", "{root}/f"],
                                  ["predict", "{fifo_jpg}", "--no-progress"],
                                  ["evaluate", "--model", "{model}", "--data", "{fifo_csv}"]],
                         ids=["train", "predict", "evaluate"])
def test_a_fifo_is_refused_at_once_instead_of_hanging(world, argv):
    command = [sys.executable, "-m", "ferkit", *(part.format(**world) for part in argv)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "not a regular file" in result.stderr and "Traceback" not in result.stderr


def test_what_used_to_break_now_works(world, capsys):
    """Inputs that are odd but fine: a csv with a byte order mark, a file name with TeX in it, a skipped bad row,
    a .gif in a folder, a folder with a stray text file (said, not silent)."""
    out = Path(world["root"]) / "ok"
    assert main(["evaluate", "--model", world["model"], "--data", world["bom_csv"], "--split", "Training"]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["predict", world["dollar"], "--quiet", "--annotate", str(out)]) == 0  # the chart title is text
    assert any(out.glob("*.face1.png")), list(out.iterdir())
    assert main(["evaluate", "--model", world["model"], "--data", world["bad_row_csv"], "--split", "Training",
                 "--skip-bad-rows"]) == 0
    assert "skipped 1 bad row(s) (lines 3)" in capsys.readouterr().err
    assert main(["evaluate", "--model", world["model"], "--data", str(Path(world["root"]) / "folder")]) == 0
    assert "skipped 1 file(s) that are not readable images" in capsys.readouterr().err
    gif = Path(world["root"]) / "gifs"
    gif.mkdir()
    from PIL import Image

    Image.fromarray(cv2.cvtColor(one_face_frame(), cv2.COLOR_BGR2RGB)).save(gif / "face.gif")
    assert main(["predict", str(gif), "--json", str(out / "gif.json"), "--quiet"]) == 0
    assert '"face.gif"' in (out / "gif.json").read_text().replace(str(gif) + "/", '"')


# ---------------------------------------------------------------------------------------------- Python API

API_CASES = {
    "bool array": lambda r: r.predict(np.zeros((64, 64, 3), bool)),
    "complex array": lambda r: r.predict(np.zeros((64, 64, 3), np.complex64)),
    "object array": lambda r: r.predict(np.full((64, 64), None, object)),
    "ragged list": lambda r: r.predict([[1, 2], [3]]),
    "one-dimensional array": lambda r: r.predict(np.zeros(64, np.uint8)),
    "empty array": lambda r: r.predict(np.zeros((0, 0, 3), np.uint8)),
    "five channels": lambda r: r.predict(np.zeros((64, 64, 5), np.uint8)),
    "NaN pixels": lambda r: r.predict(np.full((64, 64, 3), np.nan, np.float32)),
    "missing path": lambda r: r.predict("/nonexistent/face.jpg"),
    "a folder as an image": lambda r: r.predict("/tmp"),
    "a device as an image": lambda r: r.predict("/dev/zero"),
    "garbage bytes": lambda r: r.predict(b"\x00\x01garbage"),
    "empty bytes": lambda r: r.predict(b""),
    "batch with a bad member": lambda r: r.predict_batch([one_face_frame(), np.zeros((4, 4, 3), bool)]),
}


@pytest.fixture(scope="module")
def recognizer(world):
    from ferkit import Recognizer

    return Recognizer(world["model"])


@pytest.mark.parametrize("name", API_CASES)
def test_the_python_api_raises_ferkit_error_for_unusable_input(name, recognizer):
    with pytest.raises(FerkitError):
        API_CASES[name](recognizer)


@pytest.mark.parametrize("make", [lambda w: __import__("ferkit").Recognizer("nosuch"),
                                  lambda w: __import__("ferkit").Recognizer(w["model"], detector="bogus"),
                                  lambda w: __import__("ferkit").Recognizer(w["model"], threshold=-1),
                                  lambda w: __import__("ferkit").Recognizer(w["text_pt"])],
                         ids=["unknown model", "unknown detector", "negative threshold", "not a checkpoint"])
def test_a_recognizer_that_cannot_be_built_says_why(world, make):
    with pytest.raises(FerkitError):
        make(world)


# ---------------------------------------------------------------------------------------------- the server

SERVER_CASES = {
    "not multipart": (dict(method="POST", url="/api/v1/predict", content=b"{}",
                           headers={"content-type": "application/json"}), 415),
    "no file": (dict(method="POST", url="/api/v1/predict", headers={"content-type": "multipart/form-data; boundary=b"},
                     content=b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--b--\r\n'), 422),
    "text as photo": (dict(method="POST", url="/api/v1/predict", files={"file": ("a.jpg", b"hello")}), 415),
    "unknown model": (dict(method="POST", url="/api/v1/predict?model=../../etc/passwd",
                           files={"file": ("a.jpg", b"hello")}), 422),
    "unknown detector": (dict(method="POST", url="/api/v1/predict?detector=bogus",
                              files={"file": ("a.jpg", b"hello")}), 422),
    "image as video": (dict(method="POST", url="/api/v1/video",
                            files={"file": ("a.mp4", cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())}),
                       415),
    "unknown job": (dict(method="GET", url="/api/v1/video/nosuchjob"), 404),
    "another site's page": (dict(method="POST", url="/api/v1/predict", files={"file": ("a.jpg", b"x")},
                                 headers={"origin": "http://evil.example"}), 403),
}


@pytest.fixture(scope="module")
def client(world):
    from fastapi.testclient import TestClient

    from ferkit.web.app import create_app

    with TestClient(create_app(model=world["model"], workers=1)) as test_client:
        yield test_client


@pytest.mark.parametrize("name", SERVER_CASES)
def test_the_server_answers_bad_requests_with_a_json_4xx(name, client):
    request, status = SERVER_CASES[name]
    response = client.request(**request)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and body["detail"] and "Traceback" not in response.text


# ---------------------------------------------------------------------------------------------- nothing left behind

def test_a_full_disk_during_a_checkpoint_save_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    from ferkit.classifier import checkpoint as module

    path = make_checkpoint(tmp_path / "model.pt")
    before = path.read_bytes()

    def full_disk(obj, target, *args, **kwargs):
        Path(target).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module.torch, "save", full_disk)
    with pytest.raises(FerkitError, match="No space left on device"):
        module.save_checkpoint(path, module.load_checkpoint(path))
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_a_run_removes_the_partial_save_a_kill_left(tmp_path, fer_rows, write_fer_csv, capsys):
    csv = write_fer_csv(tmp_path / "fer2013.csv", fer_rows)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt.tmp").write_bytes(b"half a checkpoint")
    assert main(["train", "--data", str(csv), "--model", "simple_cnn", "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--threads", "1", "--out", str(run)]) == 0
    assert not (run / "last.pt.tmp").exists() and "removed last.pt.tmp" in capsys.readouterr().out


def test_onnx_runtime_records_no_telemetry(tmp_path):
    """ONNX Runtime 1.32 writes a usage event under ~/.cache/Microsoft for every process unless told not to."""
    code = ("from ferkit import Recognizer; from ferkit.testing.media import one_face_frame; "
            "print(len(Recognizer().predict(one_face_frame())))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORT_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**env, "HOME": str(tmp_path)})
    assert result.returncode == 0 and result.stdout.strip() == "1", result.stderr
    assert not (tmp_path / ".cache" / "Microsoft").exists(), sorted(tmp_path.rglob("*"))


def test_a_gzip_bomb_is_refused_before_it_is_unzipped(tmp_path, monkeypatch, capsys):
    from ferkit.data import fer2013

    monkeypatch.setattr(fer2013, "MAX_CSV_BYTES", 4096)
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb") as handle:
        handle.write(("emotion,pixels,Usage\n" + fer_line(0, "0 " * 2303 + "0", "Training") + "\n").encode() * 50)
    with pytest.raises(FerkitError, match="unzips to over"):
        fer2013.read_bytes(bomb)
