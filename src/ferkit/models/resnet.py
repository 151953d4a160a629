"""ResNet-18 adapted to 48×48 gray faces: 3×3 stem, no stem max-pool, so the last stage still sees 6×6."""

import torch
import torch.nn as nn

from ferkit.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def _resnet(depths, num_classes: int, in_chans: int, width: int, dropout: float) -> nn.Module:
    layers = [nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    cin = width
    for stage, depth in enumerate(depths):
        cout = width * 2 ** stage
        for block in range(depth):
            layers.append(BasicBlock(cin, cout, 2 if (block == 0 and stage > 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


@register_model
def resnet18(num_classes: int = 7, in_chans: int = 1, width: int = 64, dropout: float = 0.0) -> nn.Module:
    return _resnet((2, 2, 2, 2), num_classes, in_chans, width, dropout)
