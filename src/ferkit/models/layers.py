"""Small building blocks shared by several architectures."""

from __future__ import annotations

import torch
import torch.nn as nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU,
               "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class GrayToChannels(nn.Module):
    """Lets a model built for 3-channel input take our 1-channel crops (the gray value is repeated)."""

    def __init__(self, in_chans: int):
        super().__init__()
        self.in_chans = in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.in_chans != 1:
            return x.expand(-1, self.in_chans, -1, -1)
        return x


class GridFlatten(nn.Module):
    """Flattens a C×g×g feature map for a fixed-size head; a map of another size (a net trained at a lower input
    resolution first, as in progressive resizing) is average-pooled to g×g before. At the size the head was built
    for it is a plain flatten, so exported graphs and saved weights are unchanged."""

    def __init__(self, grid: int):
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.grid, self.grid):
            x = nn.functional.adaptive_avg_pool2d(x, self.grid)
        return x.flatten(1)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )
