"""Test-time augmentation views: the shift mode moves pixels as stated, the PyTorch and NumPy (ONNX) paths build the
same views in the same order, the calibration logits agree with the probabilities, and bad --tta values fail early."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import skimage_crops

from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.classifier.torch_inference import predict_logits, tta_views
from ferkit.classifier.tta import SHIFT_PX, check_tta, parse_tta, tta_views_numpy, view_count
from ferkit.cli import main
from ferkit.testing.media import make_checkpoint


def dot_image() -> np.ndarray:
    x = np.zeros((1, 1, 48, 48), np.float32)
    x[0, 0, 20, 30] = 1.0
    return x


@pytest.mark.parametrize("modes, count", [([], 1), (["flip"], 2), (["shift"], 5), (["flip", "shift"], 10)])
def test_view_counts(modes, count):
    assert view_count(modes) == count
    assert len(tta_views_numpy(dot_image(), modes)) == count
    assert len(tta_views(torch.from_numpy(dot_image()), modes)) == count


def test_shift_views_move_the_content_by_the_stated_pixels():
    views = tta_views_numpy(dot_image(), ["shift"])
    where = [tuple(int(i) for i in np.argwhere(v[0, 0] == 1.0)[0]) for v in views]
    p = SHIFT_PX
    assert where == [(20, 30), (20, 30 + p), (20, 30 - p), (20 + p, 30), (20 - p, 30)]
    assert all(v.shape == (1, 1, 48, 48) for v in views)


def test_shift_repeats_the_border():
    x = np.arange(48, dtype=np.float32)[None, None, None, :].repeat(48, axis=2)  # each row 0..47
    right = tta_views_numpy(x, ["shift"])[1]
    assert (right[0, 0, :, :SHIFT_PX + 1] == 0).all() and right[0, 0, 0, -1] == 47 - SHIFT_PX


def test_torch_and_numpy_views_are_identical():
    x = np.random.default_rng(0).random((3, 1, 48, 48), dtype=np.float32)
    for modes in ([], ["flip"], ["shift"], ["flip", "shift"]):
        a = tta_views_numpy(x, modes)
        b = tta_views(torch.from_numpy(x), modes)
        assert all(np.array_equal(u, w.numpy()) for u, w in zip(a, b))


def test_logits_views_match_probabilities(tmp_path):
    classifier = TorchClassifier.load(make_checkpoint(tmp_path / "m.pt", "simple_cnn"))
    crops = skimage_crops(6)
    modes = ["flip", "shift"]
    logits = predict_logits(classifier.model, crops, tta=modes)
    assert logits.shape == (10, 6, 7)
    direct = classifier.predict_proba(crops, tta=modes)  # temperature 1 in a fresh checkpoint
    assert np.abs(torch.softmax(torch.from_numpy(logits), 2).mean(0).numpy() - direct).max() < 1e-5


def test_parse_tta():
    assert parse_tta(None) is None
    assert parse_tta("none") == [] and parse_tta("flip") == ["flip"]
    assert parse_tta("flip, shift") == ["flip", "shift"]
    with pytest.raises(ValueError, match="unknown test-time augmentation 'tencrop'"):
        check_tta(["tencrop"])


def test_cli_rejects_an_unknown_tta_before_loading_anything(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--model", "default", "--data", "x.csv", "--tta", "flip,tencrop"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown test-time augmentation 'tencrop'" in err and "Traceback" not in err
