"""mini-Xception (Arriaga et al. 2017): two 3×3 convs of 8, four residual separable modules, conv to classes, GAP."""

import torch
import torch.nn as nn

from ferkit.models.registry import register_model


class SeparableConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))


class XceptionModule(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))
        self.body = nn.Sequential(
            SeparableConv(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            SeparableConv(cout, cout), nn.BatchNorm2d(cout),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.residual(x)


@register_model
def mini_xception(num_classes: int = 7, in_chans: int = 1, widths=(16, 32, 64, 128)) -> nn.Module:
    layers = [nn.Conv2d(in_chans, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
              nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True)]
    cin = 8
    for width in widths:
        layers.append(XceptionModule(cin, width))
        cin = width
    layers += [nn.Conv2d(cin, num_classes, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)
