"""Every registered architecture: output shape, gradients, class count; exact parameter counts of the seed models."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ferkit.models import count_parameters, create_model, list_models, register_model
from ferkit.vision.crop import normalise

MODELS = list_models()


def test_registry_lists_the_known_models():
    assert set(MODELS) >= {"simple_cnn", "deep_cnn", "mini_xception", "seed_cnn", "vgg", "resnet18"}
    assert MODELS == sorted(MODELS)


@pytest.fixture(scope="module")
def inputs(face_crops):
    return normalise(face_crops[:2])  # real faces, 2×1×48×48, as the trainer feeds them


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name, inputs):
    torch.manual_seed(0)
    model = create_model(name)
    model.train()
    out = model(inputs)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    loss = F.cross_entropy(out, torch.tensor([3, 5]))
    loss.backward()
    params = list(model.named_parameters())
    assert params
    for pname, param in params:
        assert param.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}.{pname} has a non-finite gradient"
    assert any(param.grad.abs().sum() > 0 for _, param in params)


@pytest.mark.parametrize("name", MODELS)
def test_eight_classes_and_single_image_inference(name, inputs):
    torch.manual_seed(0)
    model = create_model(name, num_classes=8).eval()
    with torch.no_grad():
        out = model(inputs)
        single = model(inputs[:1])
    assert out.shape == (2, 8) and torch.isfinite(out).all()
    assert single.shape == (1, 8)
    torch.testing.assert_close(single, out[:1], rtol=1e-4, atol=1e-5)  # eval: no batch dependence
    assert model.arch == name and model.arch_kwargs == {"num_classes": 8}


def test_simple_cnn_parameters():
    assert count_parameters(create_model("simple_cnn")) == 167_623


def test_deep_cnn_parameters():
    model = create_model("deep_cnn")
    assert count_parameters(model) == 4_474_759
    assert count_parameters(model, keras_style=True) == 4_478_727


def test_mini_xception_parameters():
    model = create_model("mini_xception")
    assert 56_000 <= count_parameters(model) <= 59_000
    assert count_parameters(model, keras_style=True) == 58_423


def test_count_parameters_skips_frozen():
    model = create_model("simple_cnn")
    for param in model[-1].parameters():  # the last Linear(64, 7): 64*7 + 7
        param.requires_grad_(False)
    assert count_parameters(model) == 167_623 - (64 * 7 + 7)


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(KeyError) as caught:
        create_model("nope")
    message = str(caught.value)
    assert "nope" in message
    for name in MODELS:
        assert name in message


def test_registering_a_name_twice_fails():
    def simple_cnn(num_classes: int = 7) -> nn.Module:  # same name as a registered builder
        return nn.Linear(1, num_classes)

    with pytest.raises(ValueError, match="simple_cnn"):
        register_model(simple_cnn)
    assert list_models() == MODELS


def test_vgg_takes_smaller_faces_and_is_a_plain_flatten_at_48():
    from ferkit.models.layers import GridFlatten

    model = create_model("vgg", width=8).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
        features = torch.randn(2, 64, 3, 3)
        assert torch.equal(GridFlatten(3)(features), features.flatten(1))
        # A 2×2 map is pooled to the 3×3 grid the head reads: corners stay corners, the middle row/column averages.
        pooled = GridFlatten(3)(torch.arange(4.0).reshape(1, 1, 2, 2)).reshape(3, 3)
        assert torch.equal(pooled, torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]]))
