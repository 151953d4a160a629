"""The one definition of a face crop, shared by training and recognition: 48×48 gray uint8, then normalised."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is imported only where a tensor is made, so ONNX-only recognition never loads it
    import torch

CROP_SIZE = 48
# Pixels are scaled to [0, 1] then standardised with these fixed values (close to FER2013's own mean and std),
# so a model never depends on statistics of whatever data it was trained on.
MEAN = 0.5
STD = 0.25
PREPROCESS = {"size": CROP_SIZE, "color": "gray", "mean": MEAN, "std": STD}

# How FER2013 frames a face, relative to a face detector's box (measured by bench/fer_framing.py on 800 FER2013
# images: RetinaFace's box → frame side 1.032 × box height, frame centre 0.013 frame sides below the box centre;
# OpenCV Haar's square box → 1.021 × box side, +0.003). The crop is a square of FRAME_SCALE × the box's longer
# side, centred FRAME_SHIFT × that square's side below the box centre.
FRAME_SCALE = 1.03
FRAME_SHIFT = 0.01


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


def box_crop(image: np.ndarray, box, angle: float = 0.0, size: int = CROP_SIZE, scale: float = FRAME_SCALE,
             shift: float = FRAME_SHIFT) -> np.ndarray:
    """A face in a larger image → size×size gray uint8 framed like FER2013.

    box is the detector's (x, y, w, h); angle (degrees, counter-clockwise) is how far to rotate the face about
    the square's centre so that the eyes are level (0: no rotation). Pixels outside the image repeat the
    border. The square is cut (and rotated) in one affine warp at up to 4× the output size, then reduced by
    face_crop, the same resize a training image goes through."""
    gray = to_gray(image)
    x, y, w, h = (float(v) for v in box)
    side = scale * max(w, h, 1.0)
    theta = math.radians(angle)
    # the shift is along the face's own vertical axis, which is rotated by -angle in the image
    cx = x + w / 2 - shift * side * math.sin(theta)
    cy = y + h / 2 + shift * side * math.cos(theta)
    out = int(min(max(round(side), size), 4 * size))
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, out / side)
    matrix[0, 2] += out / 2 - cx
    matrix[1, 2] += out / 2 - cy
    square = cv2.warpAffine(gray, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return face_crop(square, size)


def normalise_numpy(crops: np.ndarray) -> np.ndarray:
    """uint8 N×48×48 (or N×1×48×48) crops → float32 N×1×48×48 model input, without torch (ONNX Runtime)."""
    batch = np.asarray(crops)
    if batch.ndim == 3:
        batch = batch[:, None]
    return ((batch.astype(np.float32) / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)


def normalise(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 N×48×48 (or N×1×48×48) crops → float32 N×1×48×48 model input."""
    import torch

    batch = torch.as_tensor(crops)
    if batch.ndim == 3:
        batch = batch.unsqueeze(1)
    return (batch.float() / 255.0 - MEAN) / STD


def normalise_unit(batch: torch.Tensor) -> torch.Tensor:
    """Float crops already in [0, 1] (after augmentation) → model input."""
    return (batch - MEAN) / STD
