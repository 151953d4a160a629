"""The one definition of a face crop, shared by training and recognition: 48×48 gray uint8, then normalised."""

from __future__ import annotations

import cv2
import numpy as np
import torch

CROP_SIZE = 48
# Pixels are scaled to [0, 1] then standardised with these fixed values (close to FER2013's own mean and std),
# so a model never depends on statistics of whatever data it was trained on.
MEAN = 0.5
STD = 0.25
PREPROCESS = {"size": CROP_SIZE, "color": "gray", "mean": MEAN, "std": STD}


def to_gray(image: np.ndarray) -> np.ndarray:
    """Gray uint8 from gray, BGR, BGRA or 16-bit input (OpenCV channel order)."""
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}")


def face_crop(image: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """A whole image taken as one face: gray, centre-cropped to a square, resized to size×size uint8."""
    gray = to_gray(image)
    h, w = gray.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = gray[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def normalise(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 N×48×48 (or N×1×48×48) crops → float32 N×1×48×48 model input."""
    batch = torch.as_tensor(crops)
    if batch.ndim == 3:
        batch = batch.unsqueeze(1)
    return (batch.float() / 255.0 - MEAN) / STD


def normalise_unit(batch: torch.Tensor) -> torch.Tensor:
    """Float crops already in [0, 1] (after augmentation) → model input."""
    return (batch - MEAN) / STD
