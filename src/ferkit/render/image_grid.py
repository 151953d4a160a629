"""A grid of gray images as a PNG: one row per item, the first column set apart (an original beside its versions)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import write_atomically


def image_grid(tiles: np.ndarray, scale: int = 2, pad: int = 2, gap: int = 4) -> np.ndarray:
    """uint8 rows × columns × H × W tiles → one uint8 image: white between tiles, `gap` more after column 1."""
    n, cols, h, w = tiles.shape
    grid = np.full((n * (h + pad) + pad, cols * (w + pad) + pad + gap), 255, np.uint8)
    for i in range(n):
        for j in range(cols):
            x = pad + j * (w + pad) + (gap if j > 0 else 0)
            y = pad + i * (h + pad)
            grid[y:y + h, x:x + w] = tiles[i, j]
    return cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def save_image_grid(path: str | Path, tiles: np.ndarray) -> Path:
    """The grid as an image file (PNG, or whatever format the suffix names), written whole or not at all."""
    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix or ".png", image_grid(tiles))
    except cv2.error:
        ok = False
    if not ok:
        raise FerkitError(f"{path}: cannot write an image with the suffix {path.suffix!r} (use .png)")
    return write_atomically(path, data.tobytes())
