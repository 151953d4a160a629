"""What an augmentation setting does: each image beside augmented versions of it (drawn by ferkit.render.image_grid)."""

from __future__ import annotations

import numpy as np
import torch

from ferkit.data.augment import AugmentConfig, Augmenter, mix_batch


def augmented_versions(images: np.ndarray, config: AugmentConfig, versions: int = 5, seed: int = 0) -> np.ndarray:
    """uint8 N × (1 + versions) × H × W: each image first, then `versions` augmented copies of it."""
    gen = torch.Generator().manual_seed(seed)
    batch = torch.from_numpy(images).unsqueeze(1).float() / 255.0
    targets = torch.eye(len(images))
    columns = [batch]
    augmenter = Augmenter(config)
    for _ in range(versions):
        augmented, _ = mix_batch(augmenter(batch, gen), targets, config, gen)
        columns.append(augmented)
    tiles = torch.stack(columns, 1).squeeze(2)
    return (tiles.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
