"""Ensembles: one checkpoint whose probabilities are the mean of its members' (each at its own temperature),
the same in PyTorch and ONNX Runtime; clear refusals for members that cannot be combined."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import skimage_crops

from ferkit.classifier.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ferkit.classifier.export import export_onnx
from ferkit.classifier.onnx_classifier import OnnxClassifier
from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.cli import main
from ferkit.models import create_model
from ferkit.testing.media import make_checkpoint


def _with(path, model_state=None, **changes):
    checkpoint = load_checkpoint(path)
    info = replace(checkpoint.info, **changes)
    save_checkpoint(path, Checkpoint(info, model_state if model_state is not None else checkpoint.model_state))
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    folder = tmp_path_factory.mktemp("members")
    return [
        _with(make_checkpoint(folder / "a.pt", "simple_cnn", seed=0), temperature=0.7),
        _with(make_checkpoint(folder / "b.pt", "mini_xception", seed=1), temperature=1.6),
        make_checkpoint(folder / "c.pt", "simple_cnn", seed=2),
    ]


@pytest.fixture(scope="module")
def ensemble(members, tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble") / "ens.pt"
    assert main(["ensemble", *map(str, members), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("tta", [[], ["flip"], ["flip", "shift"]])
def test_probabilities_are_the_mean_of_the_members(members, ensemble, tta):
    crops = skimage_crops(8)
    expected = np.mean([TorchClassifier.load(m).predict_proba(crops, tta=tta) for m in members], axis=0)
    got = TorchClassifier.load(ensemble).predict_proba(crops, tta=tta)
    assert got.shape == (8, 7)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(expected, TorchClassifier.load(members[0]).predict_proba(crops, tta=tta), atol=1e-3)


def test_the_checkpoint_records_its_members(members, ensemble, capsys):
    info = load_checkpoint(ensemble).info
    assert info.arch == "ensemble" and len(info.members) == 3
    assert [m["arch"] for m in info.members] == ["simple_cnn", "mini_xception", "simple_cnn"]
    assert [m["temperature"] for m in info.members] == [0.7, 1.6, 1.0]
    assert all(len(m["sha256"]) == 64 for m in info.members)
    assert info.parameters == sum(load_checkpoint(m).info.parameters for m in members)
    assert main(["models"]) == 0  # lists shipped models; an ensemble file elsewhere does not disturb it


def test_onnx_export_matches_pytorch(ensemble, tmp_path):
    out = export_onnx(ensemble, tmp_path / "ens.onnx")
    torch_model, onnx_model = TorchClassifier.load(ensemble), OnnxClassifier.load(out)
    assert onnx_model.arch == "ensemble" and onnx_model.labels == torch_model.labels
    crops = skimage_crops(16)
    for tta in ([], ["flip"]):
        np.testing.assert_allclose(onnx_model.predict_proba(crops, tta=tta), torch_model.predict_proba(crops, tta=tta),
                                   atol=1e-4)


def test_an_ensemble_teaches_and_evaluates_like_a_checkpoint(ensemble):
    classifier = TorchClassifier.load(ensemble)
    logits = classifier.predict_logits(skimage_crops(4), tta=["flip"])
    assert logits.shape == (2, 4, 7) and np.isfinite(logits).all()
    probs = torch.softmax(torch.from_numpy(logits[0]), dim=1).numpy()  # log of the mean probability
    np.testing.assert_allclose(probs, classifier.predict_proba(skimage_crops(4), tta=[]), atol=1e-5)


def test_refusals_are_one_line_and_exit_2(members, ensemble, tmp_path, capsys):
    eight = make_checkpoint(tmp_path / "eight.pt", "simple_cnn")
    net = create_model("simple_cnn", num_classes=8)
    _with(eight, labels=[*load_checkpoint(eight).info.labels, "contempt"], model_state=net.state_dict(),
          arch_kwargs={"num_classes": 8})
    flipped = make_checkpoint(tmp_path / "flipped.pt", "mini_xception", tta=("flip",))
    cases = [
        ([str(members[0])], "at least two members"),
        ([str(members[0]), str(eight)], "predicts"),
        ([str(members[0]), str(ensemble)], "is itself an ensemble"),
        ([str(members[0]), str(flipped)], "--tta"),
        ([str(members[0]), str(tmp_path / "missing.pt")], "missing.pt"),
    ]
    for args, message in cases:
        out = tmp_path / "never.pt"
        assert main(["ensemble", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
    out = tmp_path / "chosen.pt"
    assert main(["ensemble", str(members[0]), str(flipped), "--out", str(out), "--tta", "flip"]) == 0
    assert load_checkpoint(out).info.tta == ["flip"]


def test_shipping_an_ensemble_keeps_its_members(ensemble, tmp_path, monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("ship", Path(__file__).resolve().parents[1] / "tools" / "ship.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    monkeypatch.setattr(ship, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(sys, "argv", ["ship.py", str(ensemble), "pair", "--tta", "flip"])
    assert ship.main() == 0
    crops = skimage_crops(4)
    shipped = TorchClassifier.load(tmp_path / "pair.pt")
    assert shipped.arch == "ensemble" and shipped.tta == ["flip"]
    expected = TorchClassifier.load(ensemble).predict_proba(crops, tta=["flip"])
    np.testing.assert_allclose(shipped.predict_proba(crops), expected, atol=1e-6)


def test_grad_cam_of_an_ensemble_averages_its_members(ensemble):
    from ferkit.evaluate.saliency import grad_cam

    classifier = TorchClassifier.load(ensemble)
    crops = skimage_crops(4)
    maps, probs = grad_cam(classifier.model, crops)
    assert maps.shape == (4, 48, 48) and maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(probs, classifier.predict_proba(crops, tta=[]), atol=1e-5)
    target = probs.argmax(1)
    members = np.mean([grad_cam(m, crops, classes=target)[0] for m in classifier.model.members], axis=0)
    peak = members.reshape(4, -1).max(1)[:, None, None]
    np.testing.assert_allclose(maps, np.where(peak > 0, members / np.maximum(peak, 1e-12), 0), atol=1e-6)


def test_an_ensemble_is_a_distillation_teacher(ensemble):
    from ferkit.train.distillation import load_teachers, teacher_probs
    from ferkit.vision.crop import normalise

    crops = skimage_crops(4)
    teachers = load_teachers([str(ensemble)], 7, torch.device("cpu"), channels_last=True)
    probs = teacher_probs(teachers, normalise(crops).contiguous(memory_format=torch.channels_last), 1.0, False)
    expected = TorchClassifier.load(ensemble).predict_proba(crops, tta=[])
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-5)


def test_ensemble_eval_split_views_give_each_member_one_view(members):
    """experiments/ensemble_eval.py --views split: member 1 sees the face, member 2 its mirror image, once each."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "ensemble_eval", Path(__file__).resolve().parents[1] / "experiments" / "ensemble_eval.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    crops = skimage_crops(6)
    a, b = (TorchClassifier.load(m) for m in members[:2])
    plain, mirrored = a.predict_proba(crops, tta=[]), b.predict_proba(crops[..., ::-1].copy(), tta=[])
    split = tool.member_probabilities([a, b], crops, "split")
    np.testing.assert_allclose(split[0], plain, atol=1e-6)
    np.testing.assert_allclose(split[1], mirrored, atol=1e-6)
    assert not np.allclose(mirrored, b.predict_proba(crops, tta=[]), atol=1e-4)  # the mirror is a different view
    np.testing.assert_allclose(tool.member_probabilities([a, b], crops, "none")[1], b.predict_proba(crops, tta=[]),
                               atol=1e-6)
    np.testing.assert_allclose(tool.member_probabilities([a], crops, "own")[0], a.predict_proba(crops), atol=1e-6)
