"""Alignment: level the eyes, cut the face framed like FER2013, 48×48 gray — through ferkit.vision.crop.box_crop,
the crop definition training shares — and optional light/contrast preprocessing of the crop.

Preprocessing options (the seed projects' ideas), applied in the order given, on the 48×48 crop:

- ``equalize``: global histogram equalisation
- ``clahe``: contrast-limited adaptive histogram equalisation (clip 2.0, 4×4 tiles)
- ``gamma``: light compensation, a gamma that brings the crop's mean to mid-gray
- ``smooth``: 3×3 Gaussian smoothing

The default is none: the shipped models are trained on plain FER2013 crops, and no option has been measured to
help them (see docs/ once measured); each is there to try with ``--preprocess``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.vision.crop import CROP_SIZE, box_crop, to_gray

PREPROCESS_OPTIONS = ("equalize", "clahe", "gamma", "smooth")
MAX_ROLL = 45.0  # degrees; a larger eye angle is more likely a landmark error than a real head roll


def check_preprocess(options) -> tuple[str, ...]:
    if options is None:
        return ()
    if isinstance(options, str):
        options = [o for o in options.replace("+", ",").split(",")]
    options = tuple(o.strip().lower() for o in options if o and o.strip().lower() not in ("", "none"))
    for option in options:
        if option not in PREPROCESS_OPTIONS:
            raise FerkitError(f"unknown preprocessing {option!r}; choose from none, {', '.join(PREPROCESS_OPTIONS)}")
    return options


def eye_angle(face) -> float:
    """Degrees to rotate (counter-clockwise) so the eyes are level; 0 without landmarks."""
    eyes = getattr(face, "eyes", None)
    if eyes is None:
        return 0.0
    (x1, y1), (x2, y2) = eyes
    if x2 - x1 < 1e-3:
        return 0.0
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    return angle if abs(angle) <= MAX_ROLL else 0.0


_CLAHE = None


def enhance(crop: np.ndarray, options=()) -> np.ndarray:
    """Apply preprocessing options to one gray uint8 crop."""
    global _CLAHE
    for option in check_preprocess(options):
        if option == "equalize":
            crop = cv2.equalizeHist(crop)
        elif option == "clahe":
            if _CLAHE is None:
                _CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
            crop = _CLAHE.apply(crop)
        elif option == "gamma":
            mean = float(crop.mean()) / 255.0
            if 0.02 < mean < 0.98:
                gamma = math.log(0.5) / math.log(mean)
                table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).round().astype(np.uint8)
                crop = cv2.LUT(crop, table)
        elif option == "smooth":
            crop = cv2.GaussianBlur(crop, (3, 3), 0)
    return crop


def align_face(image: np.ndarray, face, preprocess=(), align: bool = True, size: int = CROP_SIZE) -> np.ndarray:
    """One detected face (a detect.Face, or anything with .box and optional .eyes) → size×size gray uint8."""
    angle = eye_angle(face) if align else 0.0
    return enhance(box_crop(image, face.box, angle=angle, size=size), preprocess)


def align_faces(image: np.ndarray, faces, preprocess=(), align: bool = True, size: int = CROP_SIZE) -> np.ndarray:
    """All faces of one image → N×size×size uint8 (gray conversion done once)."""
    if not faces:
        return np.zeros((0, size, size), np.uint8)
    gray = to_gray(image)
    options = check_preprocess(preprocess)
    return np.stack([align_face(gray, face, options, align, size) for face in faces])
