"""The seed reports' simple CNN (≈54.6% on FER2013): four valid 3×3 convs, three dense layers, 167,623 params."""

import torch.nn as nn

from ferkit.models.layers import GrayToChannels
from ferkit.models.registry import register_model


@register_model
def simple_cnn(num_classes: int = 7, in_chans: int = 3) -> nn.Module:
    return nn.Sequential(
        GrayToChannels(in_chans),
        nn.Conv2d(in_chans, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),   # 48→46→23
        nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),         # 23→21→10
        nn.Conv2d(64, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),         # 10→8→4
        nn.Conv2d(64, 128, 3), nn.ReLU(inplace=True),                         # 4→2
        nn.Flatten(),
        nn.Linear(128 * 2 * 2, 64), nn.ReLU(inplace=True),
        nn.Linear(64, 64), nn.ReLU(inplace=True),
        nn.Linear(64, num_classes),
    )
