"""Batched PyTorch inference on uint8 crops, with optional test-time augmentation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.classifier.tta import SHIFTS, check_tta, view_count
from ferkit.vision.crop import normalise


def shifted(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move N×C×H×W content by (dx, dy) pixels, repeating the border (as ferkit.classifier.tta.shift_numpy)."""
    p = max(abs(dx), abs(dy))
    if p == 0:
        return x
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    return padded[..., p - dy:p - dy + x.shape[-2], p - dx:p - dx + x.shape[-1]]


def tta_views(batch: torch.Tensor, modes: list[str]) -> list[torch.Tensor]:
    """N×C×H×W → the TTA views, first the unchanged batch (order and pixels as classifier.tta.tta_views_numpy)."""
    views = [shifted(batch, dx, dy) for dx, dy in (SHIFTS if "shift" in modes else SHIFTS[:1])]
    if "flip" in modes:
        views += [torch.flip(v, dims=[3]) for v in views]
    return views


@torch.no_grad()
def predict_proba(model: torch.nn.Module, crops: np.ndarray, batch_size: int = 512, tta=(),
                  device: str | torch.device = "cpu", channels_last: bool = False, bf16: bool = False,
                  temperature: float = 1.0) -> np.ndarray:
    """uint8 N×48×48 crops → float32 N×classes probabilities (the mean over TTA views of
    softmax(logits / temperature); temperature 1 is the raw model, see ferkit.evaluate.calibration)."""
    modes = check_tta(tta)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(crops), batch_size):
        views = tta_views(normalise(crops[start:start + batch_size]).to(device), modes)
        probs = 0
        for view in views:
            if channels_last:
                view = view.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(view)
            probs = probs + torch.softmax(logits.float() / temperature, dim=1)
        out.append((probs / len(views)).cpu().numpy())
    model.train(was_training)
    num_classes = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.zeros((0, num_classes), np.float32)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, crops: np.ndarray, batch_size: int = 512, tta=()) -> np.ndarray:
    """uint8 N×48×48 crops → float32 views×N×classes logits (view 0 as is, then the TTA views in tta_views'
    order),
    for calibration: predict_proba(temperature=T) equals the mean over views of softmax(logits / T)."""
    modes = check_tta(tta)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(crops), batch_size):
        views = tta_views(normalise(crops[start:start + batch_size]), modes)
        out.append(torch.stack([model(view).float() for view in views]).numpy())
    model.train(was_training)
    if not out:
        return np.zeros((view_count(modes), 0, 0), np.float32)
    return np.concatenate(out, axis=1)
