"""Net2Wider (ferkit.models.widen, tools/widen.py): a wider vgg filled from the shipped `default` computes the same
logits on real faces; the result starts a training run through `init_from`; nets it cannot widen are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import skimage_crops

from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.errors import FerkitError
from ferkit.models import create_model
from ferkit.models.widen import widen_vgg
from ferkit.train.distillation import init_from_checkpoint
from ferkit.vision.crop import normalise

TOOL = Path(__file__).resolve().parents[1] / "tools" / "widen.py"
SHIPPED = TorchClassifier.load("default")
KWARGS = SHIPPED.info.arch_kwargs  # the shipped default's shape (a vgg)
OLD, NEW = KWARGS["width"], KWARGS["width"] + 8


@pytest.fixture(scope="module")
def shipped():
    return SHIPPED.model.eval()


@pytest.fixture(scope="module")
def faces():
    return normalise(skimage_crops(16))


@torch.no_grad()
def test_widening_without_noise_keeps_the_logits(shipped, faces):
    wide = widen_vgg(shipped, create_model("vgg", **{**KWARGS, "width": NEW}), noise=0.0).eval()
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in shipped.parameters())
    assert torch.allclose(wide(faces), shipped(faces), atol=1e-4)


@torch.no_grad()
def test_noise_makes_copies_differ_but_keeps_the_predictions(shipped, faces):
    wide = widen_vgg(shipped, create_model("vgg", **{**KWARGS, "width": NEW}), noise=0.01, seed=3).eval()
    first = wide[0][0].weight  # the first conv: the old channels then 8 copies
    near = 0.05 * first.std()  # the noise is 0.01 of the weights' spread
    copied = [j for j in range(OLD, NEW) if any(torch.allclose(first[j], first[i], atol=near) for i in range(OLD))]
    assert not any(torch.equal(first[j], first[i]) for j in range(OLD, NEW) for i in range(OLD))
    assert len(copied) == 8  # close to their originals, not equal
    assert torch.equal(wide(faces).argmax(1), shipped(faces).argmax(1))


def test_nets_it_cannot_widen_are_refused(shipped):
    with pytest.raises(FerkitError, match="same layers"):
        widen_vgg(shipped, create_model("vgg", **{**KWARGS, "width": NEW, "convs_per_stage": [2, 2, 2, 2]}))
    with pytest.raises(FerkitError, match="narrower"):
        widen_vgg(shipped, create_model("vgg", **{**KWARGS, "width": OLD - 8}))
    se = create_model("vgg", **KWARGS, se=True)
    with pytest.raises(FerkitError, match="squeeze-excite"):
        widen_vgg(se, create_model("vgg", **{**KWARGS, "width": NEW}, se=True))


def test_the_tool_writes_a_start_for_init_from(tmp_path, faces):
    out = tmp_path / "wide.pt"
    done = subprocess.run([sys.executable, str(TOOL), "default", "--width", str(NEW), "--noise", "0",
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    student = create_model("vgg", **{**KWARGS, "width": NEW})
    assert "51 tensors" in init_from_checkpoint(student, str(out))
    with torch.no_grad():
        assert torch.allclose(student.eval()(faces), SHIPPED.model.eval()(faces), atol=1e-4)
    loaded = TorchClassifier.load(str(out))  # the widened file is a usable checkpoint in its own right
    assert loaded.labels == SHIPPED.labels and loaded.temperature == SHIPPED.temperature

    narrower = subprocess.run([sys.executable, str(TOOL), "default", "--width", str(OLD - 8),
                               "--out", str(tmp_path / "n.pt")], capture_output=True, text=True)
    assert narrower.returncode == 1 and "not wider" in narrower.stderr and "Traceback" not in narrower.stderr
