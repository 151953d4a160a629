"""Test-time augmentation modes, shared by the PyTorch and ONNX Runtime classifiers (no torch import here)."""

from __future__ import annotations

TTA_MODES = ("flip",)


def check_tta(tta) -> list[str]:
    """The active modes of a TTA list ([], ["flip"]; "none" and empty entries are ignored)."""
    modes = [m for m in (tta or []) if m and m != "none"]
    unknown = [m for m in modes if m not in TTA_MODES]
    if unknown:
        raise ValueError(f"unknown test-time augmentation {unknown[0]!r}; choose from {', '.join(TTA_MODES)}")
    return modes
