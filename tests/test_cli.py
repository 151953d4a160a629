"""The `ferkit` command: outputs, exit codes and one-line messages on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.train.config import TrainConfig
from ferkit.train.engine import train

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "samples" / "astronaut_face.png"


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """A small real-looking FER2013 csv built from real photos (scikit-image), so it needs no data download."""
    from skimage import data

    faces = [cv2.resize(cv2.imread(str(SAMPLE), cv2.IMREAD_GRAYSCALE), (48, 48))]
    faces += [cv2.resize(data.camera()[y:y + 200, x:x + 200], (48, 48)) for y in (0, 150, 300) for x in (0, 150, 300)]
    rows = []
    usages = ["Training"] * 6 + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    for i, (face, usage) in enumerate(zip(faces, usages)):
        rows.append(f"{i % 7},{' '.join(map(str, face.reshape(-1)))},{usage}")
    path = tmp_path_factory.mktemp("cli") / "tiny.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    config = TrainConfig(model="simple_cnn", data=str(tiny_csv), epochs=1, batch_size=4, optimizer="adam", lr=1e-3,
                         progress=False, threads=1)
    train(config, out, log=lambda *_: None)
    return out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected a message on stderr"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_models_lists_architectures_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "simple_cnn" in out and "167,623" in out and "4,478,727" in out


def test_predict_prints_seven_probabilities_and_writes_json(tiny_run, tmp_path, capsys):
    out_json = tmp_path / "out.json"
    assert main(["predict", str(SAMPLE), "--crops", "--model", str(tiny_run), "--json", str(out_json)]) == 0
    records = json.loads(out_json.read_text())
    assert len(records) == 1
    record = records[0]
    assert set(record) == {"source", "frame", "face", "box", "emotion", "score", "probabilities"}
    assert len(record["probabilities"]) == 7
    assert abs(sum(record["probabilities"].values()) - 1) < 1e-4
    assert record["emotion"] == max(record["probabilities"], key=record["probabilities"].get)
    assert "astronaut_face.png" in capsys.readouterr().out


def test_predict_goes_on_past_bad_files_and_exits_non_zero(tiny_run, tmp_path, capsys):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut.jpg"
    ok, encoded = cv2.imencode(".jpg", cv2.imread(str(SAMPLE)))
    truncated.write_bytes(encoded.tobytes()[: len(encoded) // 3])
    out_json = tmp_path / "out.json"
    code = main(["predict", "--crops", str(SAMPLE), str(empty), str(text), str(tmp_path / "missing.png"), "--model",
                 str(tiny_run), "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 1
    assert len(json.loads(out_json.read_text())) >= 1  # the good image still got its result
    assert "could not be read" in captured.err and "empty file" in captured.err
    assert "no such file" in captured.err and "Traceback" not in captured.err


def test_evaluate_writes_json_and_confusion_png(tiny_run, tiny_csv, tmp_path, capsys):
    out_json = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(tiny_run), "--data", str(tiny_csv), "--split", "PrivateTest",
                 "--json", str(out_json), "--tta", "flip,shift"]) == 0
    report = json.loads(out_json.read_text())
    assert {"accuracy", "per_class", "confusion_matrix", "macro_f1"} <= set(report)
    assert report["count"] == 2 and report["tta"] == ["flip", "shift"]
    assert np.asarray(report["confusion_matrix"]).sum() == 2
    assert (tmp_path / "eval_confusion.png").stat().st_size > 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "--model", "no-such-model", "--data", "x.csv"], "unknown model"),
    (["train", "--model", "vgg", "--data", "missing.csv", "--out", "{tmp}/r", "--epochs", "1"], "no such file"),
    (["train", "--model", "nope", "--data", "{csv}", "--out", "{tmp}/r2", "--epochs", "1"], "unknown model"),
    (["train", "--model", "vgg", "--data", "{bad}", "--out", "{tmp}/r3", "--epochs", "1"], "line 3"),
    (["train", "--data", "{csv}", "--out", "{tmp}/r4", "--set", "bogus=1"], "unknown config key"),
    (["predict", "{tmp}/nothing-here/*.png", "--model", "{run}"], "could not be read"),
])
def test_bad_input_gives_one_line_and_non_zero_exit(argv, expected, tiny_csv, tiny_run, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    lines = tiny_csv.read_text().splitlines()
    lines[2] = lines[2].replace(" ", " x", 1)  # a non-number in line 3's pixels
    bad.write_text("\n".join(lines) + "\n")
    argv = [a.format(tmp=tmp_path, csv=tiny_csv, bad=bad, run=tiny_run) for a in argv]
    code = main(argv)
    assert code != 0
    captured = capsys.readouterr()
    assert expected in captured.err and "Traceback" not in captured.err


def test_a_checkpoint_whose_weights_do_not_fit_gives_one_line(tmp_path, capsys):
    from ferkit.classifier.checkpoint import load_checkpoint, save_checkpoint
    from ferkit.testing.media import make_checkpoint

    path = make_checkpoint(tmp_path / "edited.pt", "simple_cnn")
    checkpoint = load_checkpoint(path)
    checkpoint.info.arch = "mini_xception"  # weights of one architecture under the name of another
    save_checkpoint(path, checkpoint)
    assert main(["export", "--model", str(path), "--out", str(tmp_path / "x.onnx")]) == 2
    line = _error_line(capsys)
    assert "edited.pt" in line and "do not fit a mini_xception model" in line
    checkpoint.info.arch = "transformer_xl"  # an architecture this version does not have
    save_checkpoint(path, checkpoint)
    assert main(["export", "--model", str(path), "--out", str(tmp_path / "x.onnx")]) == 2
    line = _error_line(capsys)
    assert "edited.pt" in line and "unknown model 'transformer_xl'" in line


def test_train_refuses_to_overwrite_a_run(tiny_run, tiny_csv, capsys):
    assert main(["train", "--model", "simple_cnn", "--data", str(tiny_csv), "--out", str(tiny_run)]) == 2
    assert "--resume" in _error_line(capsys)


def test_console_script_runs_and_reports_errors_without_traceback(tmp_path):
    script = Path(sys.executable).with_name("ferkit")
    result = subprocess.run([str(script), "evaluate", "--model", "default", "--data", str(tmp_path / "none.csv")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("ferkit evaluate: error:") and "Traceback" not in result.stderr
    assert subprocess.run([str(script), "--help"], capture_output=True, timeout=60).returncode == 0


def test_evaluate_works_on_a_folder_data_set(tiny_run, tmp_path, capsys):
    face = cv2.imread(str(SAMPLE))
    for name, variant in (("happy", face), ("sad", cv2.flip(face, 1)), ("3", cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))):
        (tmp_path / "set" / name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "set" / name / "a.png"), variant)
    out_json = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(tiny_run), "--data", str(tmp_path / "set"), "--json", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    assert report["count"] == 3 and report["split"] == "all"
    assert report["per_class"]["happy"]["support"] == 2 and report["per_class"]["sad"]["support"] == 1


def test_help_names_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    defaults = TrainConfig()  # train's flags default to None (a --config file wins); the help names these
    for shown in (f"--epochs EPOCHS passes over the training split (default: {defaults.epochs})",
                  f"--batch-size BATCH_SIZE images per step (default: {defaults.batch_size})",
                  f"--lr LR peak learning rate (default: {defaults.lr})",
                  f"--subset SUBSET use only the first N training images (default: {defaults.subset} = all)",
                  f"--model MODEL registered model name (see `ferkit models`) (default: {defaults.model})"):
        assert shown in text
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "(default: PrivateTest)" in " ".join(capsys.readouterr().out.split())


def test_models_shows_privatetest_figures_as_results_md_records_them(capsys):
    from test_shipped_accuracy import RESULTS, recorded_figures

    from ferkit.cli.model_tools import shipped_results

    recorded = recorded_figures(RESULTS.read_text())
    for name, figures in shipped_results().items():
        labels = figures["labels"]
        assert figures["accuracy"] == recorded[name, labels]["accuracy"], name
        assert figures["int8"] == recorded[f"{name} int8", labels]["accuracy"], name
        if "strict" in figures:
            assert figures["strict"] == recorded[name, f"{labels} strict"]["accuracy"], name
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "PrivateTest accuracy" in out and "PublicTest" not in out
    row = next(line for line in out.splitlines() if line.startswith("default "))
    assert f"{shipped_results()['default']['accuracy']:.4f}" in row


def test_evaluating_the_split_a_model_trained_on_warns(tiny_run, tiny_csv, capsys):
    assert main(["evaluate", "--model", str(tiny_run), "--data", str(tiny_csv), "--split", "Training"]) == 0
    assert "split Training is the one this model trained on" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tiny_run), "--data", str(tiny_csv), "--split", "PrivateTest"]) == 0
    assert "warning" not in capsys.readouterr().err
