"""A PNG grid of originals beside augmented versions, to see what an augmentation setting does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ferkit.data.augment import AugmentConfig, Augmenter, mix_batch


def augment_grid(images: np.ndarray, config: AugmentConfig, versions: int = 5, seed: int = 0,
                 scale: int = 2) -> np.ndarray:
    """uint8 grid: one row per image, the original first, then `versions` augmented copies."""
    gen = torch.Generator().manual_seed(seed)
    batch = torch.from_numpy(images).unsqueeze(1).float() / 255.0
    targets = torch.eye(len(images))
    columns = [batch]
    augmenter = Augmenter(config)
    for _ in range(versions):
        augmented, _ = mix_batch(augmenter(batch, gen), targets, config, gen)
        columns.append(augmented)
    tiles = torch.stack(columns, 1).squeeze(2)  # N × (1 + versions) × H × W
    n, cols, h, w = tiles.shape
    pad = 2
    grid = np.full((n * (h + pad) + pad, cols * (w + pad) + pad + 4), 255, np.uint8)
    for i in range(n):
        for j in range(cols):
            x = pad + j * (w + pad) + (4 if j > 0 else 0)  # a gap after the original column
            y = pad + i * (h + pad)
            grid[y:y + h, x:x + w] = (tiles[i, j].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def save_augment_grid(path: str | Path, images: np.ndarray, config: AugmentConfig, versions: int = 5,
                      seed: int = 0) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), augment_grid(images, config, versions, seed)):
        from ferkit.errors import FerkitError

        raise FerkitError(f"{path}: cannot write the PNG (is the folder writable and the suffix .png?)")
