"""Cleaning: drop blank images, and Training rows whose exact pixels also appear in PublicTest or PrivateTest."""

from __future__ import annotations

import numpy as np

from ferkit.data.faceset import FaceSet
from ferkit.labels import USAGES


def blank_mask(images: np.ndarray, max_range: int = 2) -> np.ndarray:
    """Images with (almost) no contrast at all, such as FER2013's 12 all-black ones."""
    flat = images.reshape(len(images), -1)
    return (flat.max(axis=1).astype(np.int16) - flat.min(axis=1)) <= max_range


def leaked_training_mask(faces: FaceSet) -> np.ndarray:
    """Training rows whose exact pixels occur in a test split (leakage that flatters test accuracy)."""
    if faces.usage is None:
        return np.zeros(len(faces), bool)
    keys = [img.tobytes() for img in faces.images]
    training = faces.usage == USAGES.index("Training")
    test_keys = {k for k, is_train in zip(keys, training) if not is_train}
    return np.fromiter((is_train and k in test_keys for k, is_train in zip(keys, training)), bool, len(keys))


def clean_faceset(faces: FaceSet) -> FaceSet:
    blank = blank_mask(faces.images)
    leaked = leaked_training_mask(faces) & ~blank
    keep = np.flatnonzero(~(blank | leaked))
    cleaned = faces.subset(keep)
    cleaned.info.update(cleaned=True, dropped_blank=int(blank.sum()), dropped_leaked=int(leaked.sum()))
    return cleaned
