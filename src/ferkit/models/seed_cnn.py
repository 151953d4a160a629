"""The seed report's CNN: three segments of two 3×3 convs, three fully connected layers, selectable activation."""

import torch.nn as nn

from ferkit.models.layers import activation
from ferkit.models.registry import register_model


@register_model
def seed_cnn(num_classes: int = 7, in_chans: int = 1, act: str = "relu", widths=(32, 64, 128),
             hidden=(512, 256), dropout: float = 0.3) -> nn.Module:
    layers, cin = [], in_chans
    for width in widths:  # 48→24→12→6
        layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), activation(act),
                   nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), activation(act),
                   nn.MaxPool2d(2)]
        cin = width
    layers.append(nn.Flatten())
    fin = cin * 6 * 6
    for size in hidden:
        layers += [nn.Linear(fin, size), activation(act), nn.Dropout(dropout)]
        fin = size
    layers.append(nn.Linear(fin, num_classes))
    return nn.Sequential(*layers)
