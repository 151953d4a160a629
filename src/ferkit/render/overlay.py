"""Drawing results on images: a box per face and a label that names it ("2 happy 0.93": the face's number, or
"#7 happy 0.93": its track in a video; then its expression and score), placed so that no two labels overlap."""

from __future__ import annotations

import cv2
import numpy as np

# BGR colour per expression (FER2013 and FER+ names); other labels (a model's own classes) get one from their name
COLORS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (0, 200, 255),
    "sad": (200, 120, 40), "surprise": (0, 140, 255), "neutral": (180, 180, 180), "contempt": (120, 120, 60),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(label: str) -> tuple[int, int, int]:
    if label in COLORS:
        return COLORS[label]
    code = sum((i + 1) * ord(c) for i, c in enumerate(label))  # stable across runs (unlike hash())
    hue = np.uint8([[[code % 180, 170, 230]]])
    return tuple(int(v) for v in cv2.cvtColor(hue, cv2.COLOR_HSV2BGR)[0, 0])


def face_tag(record: dict) -> str | None:
    """What a face's label starts with: "#7", its track in a video (stable across frames; the timeline's panels
    and the track summary say "face #7"), else "2", its number in the image (records' "face": the web page's
    cards and the chart files use it too)."""
    if record.get("track") is not None:
        return f"#{record['track']}"
    return None if record.get("face") is None else str(record["face"])


def label_text(record: dict) -> str:
    tag = face_tag(record)
    text = f"{record['emotion']} {record['score']:.2f}"
    return text if tag is None else f"{tag} {text}"


def text_scale(height: int, width: int) -> float:
    """OpenCV font scale that reads at the image's own size: about 1/45 of its shorter side, 11 px at least."""
    return float(np.clip(min(height, width) / 900, 0.45, 3.0))


def _overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _candidates(box, size, reach: int, width: int, height: int) -> np.ndarray:
    """A label's spots in the order they are tried, as rows (x, y, w, h) within the image: above its box, below it,
    inside its top edge; then, shift by shift (nearest first), slid both ways along each of those edges and moved
    further up and down."""
    x, y, w, h = box
    lw, lh = size
    rows = np.asarray([y - lh, y + h, y])  # above, below, inside the top edge
    step = max(4, lh // 2)
    shifts = np.arange(step, reach + step, step)[:, None]
    slid = np.stack([np.broadcast_to(x + shifts * np.asarray([1, -1] * 3), (len(shifts), 6)),
                     np.broadcast_to(np.repeat(rows, 2), (len(shifts), 6))], -1)
    moved = np.stack([np.full((len(shifts), 2), x), np.hstack([y - lh - shifts, y + h + shifts])], -1)
    spots = np.concatenate([np.stack([np.full(3, x), rows], -1), np.concatenate([slid, moved], 1).reshape(-1, 2)])
    spots[:, 0] = spots[:, 0].clip(0, max(0, width - lw))
    spots[:, 1] = spots[:, 1].clip(0, max(0, height - lh))
    return np.hstack([spots, np.broadcast_to([lw, lh], spots.shape)])


def _covering(spots: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """For each spot (row x, y, w, h), whether it overlaps any of rects: every pair in one array test."""
    s, r = spots[:, None, :], rects[None, :, :]
    return ((s[..., 0] < r[..., 0] + r[..., 2]) & (r[..., 0] < s[..., 0] + s[..., 2])
            & (s[..., 1] < r[..., 1] + r[..., 3]) & (r[..., 1] < s[..., 1] + s[..., 3])).any(1)


def layout_labels(boxes, sizes, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Where each label goes: a rectangle (x, y, w, h) per box, in order, none overlapping another. A label sits
    above its box, else below it, else inside its top edge; when those spots are taken (faces side by side) it
    slides along that edge, then further up or down. Nearby spots that cover no other face come first, then the
    nearest free one. sizes: (w, h) of each label. Each label's candidate spots are tested all at once (a crowd of
    100 faces took 0.4 s a frame tested one by one)."""
    faces = np.asarray(boxes, np.int64).reshape(-1, 4)
    placed = np.zeros((0, 4), np.int64)
    for i, (box, (lw, lh)) in enumerate(zip(boxes, sizes)):
        near, anywhere = max(lw, 4 * lh), max(width, height)  # a label far from its face reads worse
        spots = _candidates(box, (lw, lh), near, width, height)
        free = ~_covering(spots, placed) & ~_covering(spots, np.delete(faces, i, axis=0))
        if not free.any():
            spots = _candidates(box, (lw, lh), anywhere, width, height)
            free = ~_covering(spots, placed)
        spot = spots[int(free.argmax())] if free.any() else spots[0]
        placed = np.vstack([placed, spot[None]])
    return [tuple(int(v) for v in spot) for spot in placed]


def draw_faces(image: np.ndarray, records, copy: bool = True, layout: list | None = None) -> np.ndarray:
    """The image (BGR; gray is converted) with each record's box and label (see label_text). layout: a list
    that receives each label's rectangle (x, y, w, h), in the records' order."""
    canvas = image.copy() if copy else image
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    elif canvas.shape[2] == 4:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGRA2BGR)
    if canvas.dtype != np.uint8:
        canvas = cv2.normalize(canvas, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    height, width = canvas.shape[:2]
    scale = text_scale(height, width)
    thickness = max(1, int(round(2 * scale)))
    pad = max(2, int(round(3 * scale)))
    texts = [label_text(r) for r in records]
    metrics = [cv2.getTextSize(t, FONT, scale, thickness) for t in texts]
    sizes = [(tw + 2 * pad, th + base + 2 * pad) for (tw, th), base in metrics]
    boxes = [tuple(int(v) for v in r["box"]) for r in records]
    line = max(2, int(round(3 * scale)))
    for (x, y, w, h), record in zip(boxes, records):
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color_for(record["emotion"]), line)
    spots = layout_labels(boxes, sizes, width, height)
    for record, box, text, ((tw, th), base), spot in zip(records, boxes, texts, metrics, spots):
        _draw_label(canvas, record, box, text, th, spot, pad, scale, thickness)
    if layout is not None:
        layout.extend(spots)
    return canvas


def _draw_label(canvas, record, box, text, text_h, spot, pad, scale, thickness) -> None:
    color = color_for(record["emotion"])
    lx, ly, lw, lh = spot
    x, y, w, h = box
    if not _overlaps((lx, ly - 1, lw, lh + 2), (x, y, w, h)):  # moved away from its box: a line back to it
        cv2.line(canvas, (lx + lw // 2, ly + lh // 2), (x + w // 2, y + h // 2), color, max(1, thickness // 2),
                 cv2.LINE_AA)
    cv2.rectangle(canvas, (lx, ly), (lx + lw - 1, ly + lh - 1), color, -1)
    tag = face_tag(record)
    if tag is not None:  # the number on a dark tag, so it reads before the expression does
        (nw, _), _ = cv2.getTextSize(tag, FONT, scale, thickness)
        cv2.rectangle(canvas, (lx, ly), (lx + nw + 2 * pad - 1, ly + lh - 1), (30, 30, 30), -1)
        cv2.putText(canvas, tag, (lx + pad, ly + pad + text_h), FONT, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
        text = text[len(tag):]
        lx += nw + pad
    cv2.putText(canvas, text, (lx + pad, ly + pad + text_h), FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
