"""VGG-style net for 48×48 faces with a width multiplier: four stages of 3×3 conv-BN-ReLU pairs, optional SE."""

import torch.nn as nn

from ferkit.models.layers import GridFlatten, SqueezeExcite, conv_bn_relu
from ferkit.models.registry import register_model


def _vgg(num_classes: int, in_chans: int, width: int, convs_per_stage, se: bool, dropout: float,
         hidden: int) -> nn.Module:
    layers, cin = [], in_chans
    for stage, convs in enumerate(convs_per_stage):  # 48→24→12→6→3
        cout = width * 2 ** stage
        for _ in range(convs):
            layers.append(conv_bn_relu(cin, cout))
            cin = cout
        if se:
            layers.append(SqueezeExcite(cout))
        layers.append(nn.MaxPool2d(2))
    head = [GridFlatten(3), nn.Dropout(dropout), nn.Linear(cin * 3 * 3, hidden), nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers, *head)


@register_model
def vgg(num_classes: int = 7, in_chans: int = 1, width: int = 32, convs_per_stage=(2, 2, 2, 2), se: bool = False,
        dropout: float = 0.3, hidden: int = 256) -> nn.Module:
    """width=32 → ≈1.3M params (CPU-trainable); width=64 → ≈5M (the Khaireddin & Chen 2021 shape, slimmer)."""
    return _vgg(num_classes, in_chans, width, convs_per_stage, se, dropout, hidden)
