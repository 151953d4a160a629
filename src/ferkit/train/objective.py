"""What a run learns from: its training and validation splits, the soft targets, the class weights, the loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.data import FaceSet
from ferkit.data.ferplus import fer2013_vote_targets, find_ferplus
from ferkit.errors import FerkitError


def split_data(faces: FaceSet, config) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets; a folder without split folders gets a seeded 10% validation split."""
    if faces.usage is not None:
        train, val = faces.split(config.train_split), faces.split(config.val_split)
    else:
        order = np.random.default_rng(config.seed).permutation(len(faces))
        cut = max(1, len(faces) // 10)
        train, val = faces.subset(np.sort(order[cut:])), faces.subset(np.sort(order[:cut]))
    if config.subset:
        train = train.subset(np.arange(min(config.subset, len(train))))
    if config.val_subset:
        val = val.subset(np.arange(min(config.val_subset, len(val))))
    if len(train) == 0 or len(val) == 0:
        raise FerkitError(f"empty split: {len(train)} training and {len(val)} validation images")
    return train, val


def split_names(faces: FaceSet, config) -> tuple[str, str]:
    """What messages call the training and validation splits: FER2013's names (Training, PublicTest), or training
    and validation for a user's folder set (its train/ and val/ folders, or the automatic cut)."""
    if faces.usage is None:
        return "training", "validation"
    return faces.split_name(config.train_split), faces.split_name(config.val_split)


def soft_targets(faces: FaceSet, config, log=None) -> torch.Tensor:
    """N×classes targets: the FER+ vote distributions (soft_labels), or one-hot labels, blended with each face's
    FER+ votes when config.ferplus_votes is set (FER2013 labels)."""
    if config.soft_labels:
        if faces.votes is None:
            raise FerkitError("soft_labels needs vote distributions (labels: ferplus)")
        return torch.from_numpy(faces.votes).float()
    targets = F.one_hot(torch.from_numpy(faces.labels), faces.num_classes).float()
    if not config.ferplus_votes:
        return targets
    if faces.rows is None:
        raise FerkitError("ferplus_votes needs the FER2013 csv (with fer2013new.csv beside it), not a folder set")
    votes, voted = fer2013_vote_targets(faces, find_ferplus(config.data))
    weight = config.ferplus_votes * torch.from_numpy(voted).float()[:, None]
    if log:
        log(f"FER+ votes blended into {int(voted.sum()):,} of {len(faces):,} training targets (weight "
            f"{config.ferplus_votes:g})")
    return (1 - weight) * targets + weight * torch.from_numpy(votes)


def class_weight_vector(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    """Per-class loss weights: none, balanced (inverse frequency) or sqrt (its square root), mean 1."""
    if mode == "none":
        return None
    counts = np.bincount(labels[labels >= 0], minlength=num_classes).astype(np.float64)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy against soft targets; with class weights, each sample weighs its target's class weight."""
    per_sample = -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    if weights is None:
        return per_sample.mean()
    w = (targets * weights).sum(dim=1)
    return (per_sample * w).sum() / w.sum()
