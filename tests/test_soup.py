"""Weight averaging (ferkit.train.averaging, `ferkit soup`): the mean of nets is the mean of their weights, a soup of
one net with itself is that net, BN statistics re-estimated on real faces match the faces, the greedy soup keeps
only members that do not lose PublicTest accuracy, and nets of other shapes are refused, by the module and the
command."""

from __future__ import annotations

import pytest
import torch
from conftest import skimage_crops

from ferkit.classifier.checkpoint import load_checkpoint
from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.models import create_model
from ferkit.testing.media import make_checkpoint
from ferkit.train.averaging import average_states, recompute_batchnorm
from ferkit.vision.crop import normalise

KWARGS = {"width": 8, "convs_per_stage": [1, 1, 1, 1]}


def small_vgg(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("vgg", **KWARGS).eval()


def test_the_mean_of_two_nets_is_the_mean_of_their_weights():
    a, b = small_vgg(0).state_dict(), small_vgg(1).state_dict()
    mean = average_states([a, b])
    weight = next(k for k, v in a.items() if v.is_floating_point() and v.dim() == 4)
    assert torch.allclose(mean[weight], (a[weight] + b[weight]) / 2)
    assert not torch.equal(mean[weight], a[weight])
    counters = [k for k, v in a.items() if not v.is_floating_point()]
    assert counters and all(torch.equal(mean[k], a[k]) for k in counters)  # BN batch counters are not averaged


@torch.no_grad()
def test_a_soup_of_the_shipped_default_with_itself_is_the_default():
    shipped = TorchClassifier.load("default")
    faces = normalise(skimage_crops(8))
    state = shipped.model.state_dict()
    net = create_model(shipped.arch, **{**shipped.info.arch_kwargs, "num_classes": len(shipped.labels)})
    net.load_state_dict(average_states([state, state, state]))
    assert torch.allclose(net.eval()(faces), shipped.model.eval()(faces), atol=1e-5)


@torch.no_grad()
def test_recomputed_batchnorm_statistics_are_those_of_the_faces():
    net = small_vgg(0)
    crops = skimage_crops(16)
    first_bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    recompute_batchnorm(net, crops, batch_size=8)
    assert not net.training and first_bn.momentum == 0.1  # eval mode and the net's own momentum are restored
    seen = []
    hook = first_bn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    x = normalise(crops)
    net(x)
    net(torch.flip(x, dims=[3]))
    hook.remove()
    inputs = torch.cat(seen)
    assert torch.allclose(first_bn.running_mean, inputs.mean(dim=(0, 2, 3)), atol=1e-4)


def test_nets_of_other_shapes_are_refused(tmp_path, capsys):
    wide = create_model("vgg", **{**KWARGS, "width": 16}).state_dict()
    with pytest.raises(FerkitError, match="one architecture"):
        average_states([small_vgg(0).state_dict(), wide])
    code = main(["soup", "default", "fast", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "soup.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot average" in err and "Traceback" not in err
    assert not (tmp_path / "soup.pt").exists()


def test_the_greedy_soup_scores_its_members_on_publictest(tmp_path, fer_rows, write_fer_csv, capsys):
    csv = write_fer_csv(tmp_path / "fer2013.csv", fer_rows)
    a = make_checkpoint(tmp_path / "a.pt", "simple_cnn", seed=0)
    b = make_checkpoint(tmp_path / "b.pt", "simple_cnn", seed=1)
    out = tmp_path / "soup.pt"
    assert main(["soup", str(a), str(b), str(a), "--data", str(csv), "--out", str(out)]) == 0
    soup = load_checkpoint(out)
    lines = capsys.readouterr().out
    assert "PublicTest" in lines and soup.info.origin["soup"]["members"]
    kept = soup.info.origin["soup"]["members"]
    assert kept[0] in (str(a), str(b)) and len(kept) >= 1
    expected = average_states([load_checkpoint(m).model_state for m in kept])
    assert all(torch.equal(soup.model_state[k], expected[k]) for k in expected)
    assert soup.info.temperature == 1.0 and soup.info.arch == "simple_cnn"
