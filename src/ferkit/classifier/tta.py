"""Test-time augmentation modes, shared by the PyTorch and ONNX Runtime classifiers (no torch import here).

flip: the crop and its mirror image (2 views).
shift: the crop and four copies moved by SHIFT_PX pixels up, down, left and right, borders repeated (5 views);
    with flip, each of them mirrored as well (10 views), a 48×48 stand-in for the ten-crop of the literature,
    whose nets take a smaller crop than ours.
"""

from __future__ import annotations

import numpy as np

TTA_MODES = ("flip", "shift")
SHIFT_PX = 2   # chosen on PublicTest among 2 and 3 pixels and diagonal moves (docs/results-log.md)
SHIFTS = ((0, 0), (SHIFT_PX, 0), (-SHIFT_PX, 0), (0, SHIFT_PX), (0, -SHIFT_PX))


def check_tta(tta) -> list[str]:
    """The active modes of a TTA list ([], ["flip"], ["flip", "shift"]; "none" and empty entries are ignored)."""
    modes = [m for m in (tta or []) if m and m != "none"]
    unknown = [m for m in modes if m not in TTA_MODES]
    if unknown:
        raise ValueError(f"unknown test-time augmentation {unknown[0]!r}; choose from {', '.join(TTA_MODES)}")
    return modes


def parse_tta(text: str | None) -> list[str] | None:
    """A command-line --tta value ("none", "flip", "flip,shift") → a TTA list; None keeps the model's own."""
    if text is None:
        return None
    return check_tta([part.strip() for part in text.split(",")])


def view_count(modes: list[str]) -> int:
    return (len(SHIFTS) if "shift" in modes else 1) * (2 if "flip" in modes else 1)


def tta_views_numpy(x: np.ndarray, modes: list[str]) -> list[np.ndarray]:
    """N×C×H×W float arrays → the TTA views, the unchanged batch first (order as in classifier.torch_inference)."""
    views = [shift_numpy(x, dx, dy) for dx, dy in (SHIFTS if "shift" in modes else SHIFTS[:1])]
    if "flip" in modes:
        views += [v[..., ::-1] for v in views]
    return views


def shift_numpy(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Move N×C×H×W content by (dx, dy) pixels, repeating the border (as classifier.torch_inference.shifted)."""
    p = max(abs(dx), abs(dy))
    if p == 0:
        return x
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="edge")
    h, w = x.shape[-2:]
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]
