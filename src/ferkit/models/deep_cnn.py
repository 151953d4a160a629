"""The seed reports' deep CNN (67% test): four conv blocks 64/128/512/512 with BN and dropout, two BN dense layers."""

import torch.nn as nn

from ferkit.models.registry import register_model


def _block(cin: int, cout: int, kernel: int, dropout: float) -> list:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Dropout(dropout)]


def _dense(fin: int, fout: int, dropout: float) -> list:
    return [nn.Linear(fin, fout), nn.BatchNorm1d(fout), nn.ReLU(inplace=True), nn.Dropout(dropout)]


@register_model
def deep_cnn(num_classes: int = 7, in_chans: int = 1, dropout: float = 0.25) -> nn.Module:
    return nn.Sequential(
        *_block(in_chans, 64, 3, dropout), *_block(64, 128, 5, dropout),   # 48→24→12
        *_block(128, 512, 3, dropout), *_block(512, 512, 3, dropout),      # 12→6→3
        nn.Flatten(),
        *_dense(512 * 3 * 3, 256, dropout), *_dense(256, 512, dropout),
        nn.Linear(512, num_classes),
    )
