"""Saliency: Grad-CAM maps of a PyTorch classifier on 48×48 crops, and which examples to show.

Grad-CAM (Selvaraju et al. 2017) weights the feature maps of a late convolutional stage by the spatial mean of
the gradient of a class score, keeps the positive part and upsamples it to the crop: where the evidence for
that class lies. The stage used is the last top-level module whose output is still a feature map of at least
6×6 (1/8 of the crop) with more channels than classes, so maps stay finer than the 3×3 of the last blocks.
An ensemble's map is the mean of its members' maps for the ensemble's class.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.models.ensemble import Ensemble
from ferkit.vision.crop import normalise

MIN_SIDE = 6


def _children(model: torch.nn.Module):
    return list(model.named_children()) or [("", model)]


def find_target_layer(model: torch.nn.Module, num_classes: int, size: int = 48) -> torch.nn.Module:
    """The module whose output Grad-CAM uses (see the module docstring)."""
    shapes = []
    hooks = [module.register_forward_hook(lambda m, i, o, k=k: shapes.append((k, o.shape if torch.is_tensor(o)
                                                                              else None)))
             for k, (_, module) in enumerate(_children(model))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, size, size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    children = _children(model)
    maps = [(k, s) for k, s in shapes if s is not None and len(s) == 4 and s[1] > num_classes]
    fine = [(k, s) for k, s in maps if min(s[2], s[3]) >= MIN_SIDE]
    chosen = (fine or maps)
    if not chosen:
        raise ValueError("the model has no convolutional feature map for Grad-CAM")
    return children[chosen[-1][0]][1]


def grad_cam(model: torch.nn.Module, crops: np.ndarray, classes=None, layer: torch.nn.Module | None = None,
             num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(maps float32 N×48×48 in [0, 1], probabilities N×C) for uint8 N×48×48 crops. classes: the class whose
    evidence to show for each crop (default: the predicted class). A map whose evidence is nowhere positive is
    all zeros."""
    crops = np.asarray(crops, np.uint8)
    if crops.ndim == 2:
        crops = crops[None]
    x = normalise(crops)
    if isinstance(model, Ensemble) and layer is None:
        return _ensemble_grad_cam(model, crops, x, classes)
    was_training = model.training
    model.eval()
    if layer is None:
        with torch.no_grad():
            num_classes = num_classes or int(model(x[:1]).shape[1])
        layer = find_target_layer(model, num_classes, size=crops.shape[-1])
    store = {}
    hook = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        with torch.enable_grad():
            logits = model(x)
            target = logits.argmax(1) if classes is None else torch.as_tensor(np.asarray(classes), dtype=torch.long)
            score = logits.gather(1, target[:, None]).sum()
            activation = store["a"]
            grads = torch.autograd.grad(score, activation)[0]
    finally:
        hook.remove()
        model.train(was_training)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=crops.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    cam = torch.where(peak > 1e-12, cam / peak, torch.zeros_like(cam)).clamp(0, 1)
    probs = torch.softmax(logits.detach(), dim=1)
    return cam.detach().numpy().astype(np.float32), probs.numpy().astype(np.float32)


def _ensemble_grad_cam(model: Ensemble, crops: np.ndarray, x: torch.Tensor, classes) -> tuple[np.ndarray, np.ndarray]:
    """An ensemble has no single feature map: each member's map for the ensemble's class, averaged, rescaled."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1).numpy().astype(np.float32)
    model.train(was_training)
    target = probs.argmax(1) if classes is None else np.asarray(classes)
    cam = np.mean([grad_cam(member, crops, classes=target)[0] for member in model.members], axis=0)
    peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
    cam = np.where(peak > 1e-12, cam / np.maximum(peak, 1e-12), 0).clip(0, 1)
    return cam.astype(np.float32), probs


def pick_examples(labels: np.ndarray, probs: np.ndarray, per_class: int = 3) -> dict[int, dict[str, list[int]]]:
    """{class: {"correct": [...], "wrong": [...]}}: for each true class, the most confident correct predictions
    and the most confident mistakes (indices into labels), deterministic."""
    labels = np.asarray(labels)
    pred = probs.argmax(1)
    conf = probs.max(1)
    out = {}
    for c in range(probs.shape[1]):
        groups = {}
        for kind, mask in (("correct", (labels == c) & (pred == c)), ("wrong", (labels == c) & (pred != c))):
            idx = np.flatnonzero(mask)
            groups[kind] = idx[np.argsort(-conf[idx], kind="stable")][:per_class].tolist()
        out[c] = groups
    return out
