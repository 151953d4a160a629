"""`ferkit report` and `ferkit calibrate`: the page and its sections, perturbations, ECE, temperature scaling,
Grad-CAM. Real faces throughout: the first FER2013 rows when the data is installed, else scikit-image's photos."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from conftest import _real_rows, _write_fer_csv, skimage_crops

from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.cli import main
from ferkit.evaluate import calibration as cal
from ferkit.evaluate.robustness import PERTURBATIONS, perturb, plan, robustness_curves, stratified_sample
from ferkit.evaluate.saliency import find_target_layer, grad_cam, pick_examples
from ferkit.testing.media import make_checkpoint
from ferkit.train.config import TrainConfig
from ferkit.train.engine import train

USAGES = ["Training"] * 120 + ["PublicTest"] * 48 + ["PrivateTest"] * 72


@pytest.fixture(scope="module")
def report_csv(tmp_path_factory):
    """240 real faces (FER2013's first rows with their labels when present) split 120 / 48 / 72."""
    rows, _source = _real_rows(len(USAGES))
    return _write_fer_csv(tmp_path_factory.mktemp("report") / "faces.csv", list(rows), USAGES)


@pytest.fixture(scope="module")
def report_run(report_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-run") / "run"
    config = TrainConfig(model="simple_cnn", data=str(report_csv), epochs=2, batch_size=32, optimizer="adam",
                         lr=1e-3, progress=False, threads=1)
    train(config, out, log=lambda *_: None)
    return out


# ---------------------------------------------------------------------------------------------- the report


def test_report_writes_html_and_markdown_with_every_section(report_csv, report_run, tmp_path, capsys):
    # the second model is an ensemble (the run + an untrained mini-Xception): every section must work for it too
    member = make_checkpoint(tmp_path / "mx.pt", "mini_xception", tta=("flip",))
    second = tmp_path / "pair.pt"
    assert main(["ensemble", str(report_run), str(member), "--tta", "flip", "--out", str(second)]) == 0
    out = tmp_path / "report"
    assert main(["report", "--model", str(report_run), "--model", str(second), "--data", str(report_csv),
                 "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    assert "wrote" in capsys.readouterr().out

    page = (out / "report.html").read_text(encoding="utf-8")
    for anchor in ("comparison", "model-run", "metrics-run", "confused-run", "curves-run", "robustness-run",
                   "calibration-run", "saliency-run", "model-pair-pt", "robustness-pair-pt", "saliency-pair-pt",
                   "perturbations"):
        assert f'id="{anchor}"' in page, anchor
    assert "fig-comparison-robustness" in page  # overlaid curves, two models
    for label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"):
        assert f"<td>{label}</td>" in page
    # self-contained: every image inlined as a decodable PNG, nothing fetched
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) >= 10
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "<script" not in page

    markdown = (out / "report.md").read_text(encoding="utf-8")
    for heading in ("## Model comparison", "### run: metrics", "### run: most-confused pairs",
                    "### run: training curves", "### run: robustness", "### run: calibration", "### run: saliency",
                    "### pair.pt: calibration", "### pair.pt: saliency", "## Perturbations"):
        assert heading in markdown, heading
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", markdown)
    assert len(figures) == len(sources)
    for name in figures:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

    summary = json.loads((out / "report.json").read_text())
    first = summary["models"][0]
    assert first["metrics"]["count"] == 72 and 0 <= first["metrics"]["accuracy"] <= 1
    assert first["calibration"]["fitted_on"] == "PublicTest" and first["calibration"]["temperature"] > 0
    assert set(first["robustness"]) == {"none", "equalize", "clahe"}
    assert set(first["robustness"]["none"]) == set(PERTURBATIONS)
    assert set(first["robustness"]["clahe"]) == {n for n, p in PERTURBATIONS.items() if p.light}
    gamma = first["robustness"]["none"]["gamma"]
    assert len(gamma["accuracy"]) == len(gamma["levels"])


def test_report_refuses_bad_input_with_one_line(report_csv, report_run, tmp_path, capsys):
    assert main(["report", "--model", str(tmp_path / "missing.pt"), "--data", str(report_csv),
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "missing.pt" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["report", "--model", str(report_run), "--data", str(report_csv), "--out", str(tmp_path / "r"),
                 "--perturbations", "fog", "--no-progress"]) == 2
    assert "fog" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- perturbations


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbation_is_identity_at_its_neutral_level_and_changes_faces_elsewhere(name):
    faces = skimage_crops(8)
    p = PERTURBATIONS[name]
    assert p.identity in p.levels
    same = perturb(faces, name, p.identity)
    assert same.dtype == np.uint8 and np.array_equal(same, faces)
    for level in p.levels:
        if level == p.identity:
            continue
        changed = perturb(faces, name, level)
        assert changed.shape == faces.shape and changed.dtype == np.uint8
        assert not np.array_equal(changed, faces), (name, level)
        assert np.array_equal(changed, perturb(faces, name, level)), "not reproducible"
    assert np.array_equal(faces, skimage_crops(8)), "the input was modified in place"


def test_perturbations_move_the_pixels_the_expected_way():
    faces = skimage_crops(8)
    assert perturb(faces, "gamma", 4).mean() < faces.mean() < perturb(faces, "gamma", 0.25).mean()
    assert perturb(faces, "contrast", 0.2).std() < faces.std() < perturb(faces, "contrast", 2).std()
    assert perturb(faces, "blur", 2).astype(float).var(axis=(1, 2)).mean() < faces.astype(float).var(axis=(1, 2)).mean()
    masked = perturb(faces, "lower_face", 0.5)
    assert (masked[:, 24:] == 200).all() and np.array_equal(masked[:, :24], faces[:, :24])
    glasses = perturb(faces, "eye_band", 0.2)
    assert (glasses[:, 16:20] == 0).all() and np.array_equal(glasses[:, 30:], faces[:, 30:])


def test_robustness_curves_pass_through_clean_accuracy():
    faces = skimage_crops(8)
    labels = np.arange(8) % 7

    class Brightness:  # a stand-in classifier: the class is the crop's mean brightness bucket
        labels = tuple("abcdefg")

        def predict_proba(self, crops, tta=None, batch_size=0):
            return np.eye(7)[np.clip(crops.reshape(len(crops), -1).mean(1) // 37, 0, 6).astype(int)]

    clf = Brightness()
    curves = robustness_curves(clf, faces, labels, perturbations=["gamma", "blur"], preprocess=("none", "clahe"))
    clean = float((clf.predict_proba(faces).argmax(1) == labels).mean())
    assert curves["none"]["gamma"][PERTURBATIONS["gamma"].levels.index(1)] == clean
    assert curves["none"]["blur"][0] == clean
    assert "blur" not in curves["clahe"] and len(curves["clahe"]["gamma"]) == len(PERTURBATIONS["gamma"].levels)
    assert len(plan(["gamma", "blur"], ("none", "clahe"))) == 2 * 9 + 6


def test_stratified_sample_keeps_class_shares():
    labels = np.repeat(np.arange(3), [100, 50, 10])
    pick = stratified_sample(labels, 80, seed=1)
    assert np.array_equal(np.bincount(labels[pick]), [50, 25, 5])
    assert np.array_equal(pick, stratified_sample(labels, 80, seed=1)) and np.all(np.diff(pick) > 0)


# ---------------------------------------------------------------------------------------------- calibration


def test_ece_on_known_inputs():
    # 10 predictions at confidence 0.8: 8 right is perfectly calibrated, 10 right is off by 0.2
    probs = np.tile([0.8, 0.2], (10, 1))
    assert cal.expected_calibration_error(probs, np.array([0] * 8 + [1] * 2)) == pytest.approx(0.0)
    assert cal.expected_calibration_error(probs, np.zeros(10, int)) == pytest.approx(0.2)
    # two bins: 4 at 0.9 with 2 right (gap 0.4), 6 at 0.6 all right (gap 0.4) → 0.4
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 6)
    labels = np.array([0, 0, 1, 1] + [0] * 6)
    assert cal.expected_calibration_error(probs, labels) == pytest.approx(0.4)
    table = cal.reliability_bins(probs, labels, bins=10)
    assert table["count"].sum() == 10 and table["count"][8] == 4 and table["count"][5] == 6
    assert table["accuracy"][8] == pytest.approx(0.5) and table["confidence"][5] == pytest.approx(0.6)


@pytest.mark.parametrize("views", [1, 2])
def test_temperature_scaling_fixes_an_overconfident_toy(views):
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (4000, 7))
    p = cal.softmax(true_logits)
    labels = np.array([rng.choice(7, p=row) for row in p])
    # the toy model knows the right logits but is 3× too sure; a second view is a slightly noisy copy
    logits = np.stack([3.0 * true_logits + (0.05 * rng.normal(size=true_logits.shape) if v else 0)
                       for v in range(views)])
    temperature = cal.fit_temperature(logits, labels)
    assert 2.6 < temperature < 3.4
    summary = cal.calibration_summary(logits, labels, temperature)
    assert summary["nll_after"] < summary["nll_before"] - 0.2
    assert summary["ece_after"] < summary["ece_before"] / 3
    assert np.array_equal(cal.softmax(logits, temperature).argmax(1), cal.softmax(logits).argmax(1))


def test_calibrate_writes_the_temperature_that_predict_and_onnx_use(report_csv, report_run, tmp_path, capsys):
    from ferkit.classifier.onnx_classifier import OnnxClassifier

    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--model", str(report_run), "--data", str(report_csv), "--out", str(out)]) == 0
    assert "temperature" in capsys.readouterr().out
    raw, calibrated = TorchClassifier.load(report_run), TorchClassifier.load(out)
    assert raw.temperature == 1.0 and calibrated.temperature != 1.0
    assert calibrated.info.calibration["split"] == "PublicTest"
    faces = skimage_crops(8)
    logits = raw.predict_logits(faces)
    expected = cal.softmax(logits, calibrated.temperature)
    np.testing.assert_allclose(calibrated.predict_proba(faces), expected, atol=1e-5)
    np.testing.assert_allclose(calibrated.predict_proba(faces, temperature=1.0), raw.predict_proba(faces), atol=1e-6)
    onnx = OnnxClassifier.load(out, threads=1)
    assert onnx.temperature == pytest.approx(calibrated.temperature)
    np.testing.assert_allclose(onnx.predict_proba(faces), expected, atol=1e-4)
    # never fitted on the reporting split
    assert main(["calibrate", "--model", str(out), "--data", str(report_csv), "--split", "PrivateTest"]) == 2


# ---------------------------------------------------------------------------------------------- saliency


@pytest.mark.parametrize("arch", ["simple_cnn", "mini_xception"])
def test_grad_cam_maps_are_crop_sized_and_within_unit_range(arch, tmp_path):
    model = TorchClassifier.load(make_checkpoint(tmp_path / f"{arch}.pt", arch)).model
    faces = skimage_crops(6)
    layer = find_target_layer(model, 7)
    maps, probs = grad_cam(model, faces, layer=layer)
    assert maps.shape == (6, 48, 48) and maps.dtype == np.float32 and probs.shape == (6, 7)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert maps.reshape(6, -1).max(1).max() == pytest.approx(1.0)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    other, _ = grad_cam(model, faces, classes=[0] * 6)
    assert other.shape == maps.shape
    assert not model.training


def test_pick_examples_takes_the_most_confident_right_and_wrong():
    labels = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.55, 0.45]])
    picks = pick_examples(labels, probs, per_class=1)
    assert picks[0] == {"correct": [0], "wrong": [2]} and picks[1] == {"correct": [3], "wrong": [4]}


def test_automatic_robustness_size_follows_the_model_speed():
    from ferkit.evaluate.report import MAX_ROBUSTNESS_SIZE, MIN_ROBUSTNESS_SIZE, automatic_size

    class Timed:
        def __init__(self, seconds_per_image):
            self.cost = seconds_per_image

        def predict_proba(self, crops, tta=None):
            import time

            time.sleep(self.cost * len(crops))
            return np.zeros((len(crops), 7))

    faces = np.zeros((256, 48, 48), np.uint8)
    assert automatic_size(Timed(0.0), faces, passes=95) == MAX_ROBUSTNESS_SIZE
    assert automatic_size(Timed(1e-3), faces, passes=95, seconds=0.5) == MIN_ROBUSTNESS_SIZE
    middle = automatic_size(Timed(1e-4), faces, passes=95, seconds=5)  # about 0.85 × 5 s × 10⁴/s / 95 ≈ 450
    assert MIN_ROBUSTNESS_SIZE < middle < MAX_ROBUSTNESS_SIZE


def test_a_stratified_sample_has_exactly_the_size_asked_for():
    # FER2013's PrivateTest class counts: rounding each class's share alone gave 101 images for --subset 100
    labels = np.repeat(np.arange(7), [491, 55, 528, 879, 594, 416, 626])
    for size in (1, 5, 7, 50, 100, 101, 333, 1000, 3588):
        pick = stratified_sample(labels, size, seed=0)
        assert len(pick) == len(set(pick)) == size, size
    assert np.bincount(labels[stratified_sample(labels, 100)]).min() >= 1  # every class still in it


def test_a_smaller_stratified_sample_is_part_of_a_larger_one():
    labels = np.repeat(np.arange(7), [40, 5, 40, 80, 50, 30, 55])
    small, large = stratified_sample(labels, 100, seed=3), stratified_sample(labels, 200, seed=3)
    assert set(small) <= set(large)
