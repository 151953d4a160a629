"""ONNX export equals PyTorch within 1e-4; the ONNX Runtime classifier matches TorchClassifier; caching; no torch
import on the recognition path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import skimage_crops

from ferkit.classifier.export import export_onnx, verify_onnx
from ferkit.classifier.onnx_classifier import OnnxClassifier, onnx_cache_dir, onnx_for_checkpoint
from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.testing.media import make_checkpoint
from ferkit.vision.crop import PREPROCESS


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {arch: make_checkpoint(folder / f"{arch}.pt", arch, tta=("flip",) if arch == "mini_xception" else ())
            for arch in ("simple_cnn", "mini_xception")}


@pytest.mark.parametrize("arch", ["simple_cnn", "mini_xception"])
def test_export_matches_pytorch_and_carries_metadata(arch, checkpoints, tmp_path):
    out = export_onnx(checkpoints[arch], tmp_path / f"{arch}.onnx")
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["labels"])[3] == "happy" and json.loads(meta["preprocess"]) == PREPROCESS
    assert meta["arch"] == arch and len(meta["checkpoint_sha256"]) == 64
    torch_model = TorchClassifier.load(checkpoints[arch])
    onnx_model = OnnxClassifier.load(out)
    assert onnx_model.labels == torch_model.labels and onnx_model.tta == torch_model.tta
    crops = skimage_crops(16)
    for batch in (crops[:1], crops[:5], crops):  # dynamic batch axis
        for tta in ([], ["flip"], ["shift"], ["flip", "shift"]):
            expected = torch_model.predict_proba(batch, tta=tta)
            got = onnx_model.predict_proba(batch, tta=tta)
            assert got.shape == expected.shape
            assert np.abs(got - expected).max() < 1e-4


def test_a_mismatch_raises(checkpoints, tmp_path):
    out = export_onnx(checkpoints["simple_cnn"], tmp_path / "m.onnx")
    model = TorchClassifier.load(checkpoints["simple_cnn"]).model
    with pytest.raises(FerkitError, match="differs from PyTorch"):
        verify_onnx(lambda x: model(x) + 1e-3, out)  # noqa: E731 - a model that is off by 1e-3


def test_checkpoints_are_exported_once_into_the_cache(checkpoints):
    path = onnx_for_checkpoint(checkpoints["simple_cnn"])
    assert path.parent == onnx_cache_dir() and path.suffix == ".onnx"
    stamp = path.stat().st_mtime_ns
    again = OnnxClassifier.load(checkpoints["simple_cnn"])
    assert again.source == str(path) and path.stat().st_mtime_ns == stamp


def test_cli_export_and_its_errors(checkpoints, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "--model", str(checkpoints["simple_cnn"]), "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and "1e-4" in capsys.readouterr().out
    assert main(["export", "--model", "no-such-model", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "unknown model" in err and "Traceback" not in err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(FerkitError, match="not a readable ONNX model"):
        OnnxClassifier.load(bad)


def test_recognition_path_does_not_import_torch():
    code = ("import sys; from ferkit import Recognizer; import ferkit.runtime.recognizer, "
            "ferkit.classifier.onnx_classifier, ferkit.classifier.protocol, ferkit.vision.detect, ferkit.vision.align, "
            "ferkit.media.video, ferkit.runtime.video_recognition, ferkit.records; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
