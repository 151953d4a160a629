"""Drawing results on images: a box per face, its label and score, optionally small probability bars."""

from __future__ import annotations

import cv2
import numpy as np

# BGR colour per expression (FER2013 and FER+ names)
COLORS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (0, 200, 255),
    "sad": (200, 120, 40), "surprise": (0, 140, 255), "neutral": (180, 180, 180), "contempt": (120, 120, 60),
}


def color_for(label: str) -> tuple[int, int, int]:
    return COLORS.get(label, (0, 255, 0))


def draw_faces(image: np.ndarray, records, bars: bool = False, copy: bool = True) -> np.ndarray:
    """The image (BGR; gray is converted) with each record's box, 'label score' (and '#track' when the record
    has one) and, with bars=True, a probability bar per label beside the box."""
    canvas = image.copy() if copy else image
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    elif canvas.shape[2] == 4:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGRA2BGR)
    if canvas.dtype != np.uint8:
        canvas = cv2.normalize(canvas, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    height, width = canvas.shape[:2]
    scale = max(0.4, min(1.2, min(height, width) / 900))
    thickness = max(1, int(round(2 * scale)))
    for record in records:
        x, y, w, h = record["box"]
        color = color_for(record["emotion"])
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness)
        text = f"{record['emotion']} {record['score']:.2f}"
        if record.get("track") is not None:
            text = f"#{record['track']} {text}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
        cv2.rectangle(canvas, (x, top), (x + tw + 4, top + th + base + 4), color, -1)
        cv2.putText(canvas, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
        if bars:
            _draw_bars(canvas, record, x + w + 4, y, scale)
    return canvas


def _draw_bars(canvas, record, left, top, scale):
    height, width = canvas.shape[:2]
    bar_w = int(90 * scale)
    row = int(14 * scale) + 2
    if left + bar_w + 60 * scale > width:
        left = max(0, int(left - bar_w - 70 * scale) - 8)
    for i, (label, p) in enumerate(record["probabilities"].items()):
        y = top + i * row
        if y + row > height:
            break
        cv2.rectangle(canvas, (left, y), (left + bar_w, y + row - 2), (40, 40, 40), -1)
        cv2.rectangle(canvas, (left, y), (left + int(bar_w * p), y + row - 2), color_for(label), -1)
        cv2.putText(canvas, label[:8], (left + bar_w + 3, y + row - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale * 1.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
