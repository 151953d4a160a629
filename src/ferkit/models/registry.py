"""One registry for every architecture: `@register_model` on a builder, `create_model(name, **kw)` to build."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    name = builder.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = builder
    return builder


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    model = _MODELS[name](**kwargs)
    model.arch = name            # so a checkpoint can record how to rebuild it
    model.arch_kwargs = dict(kwargs)
    return model


def count_parameters(model: nn.Module, keras_style: bool = False) -> int:
    """Trainable parameters; keras_style adds BN running mean/var, as Keras's 'Total params' does."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if keras_style:
        total += sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return total
