"""Face detection behind one interface, with back-ends chosen by name.

    detector = create_detector("retinaface", threshold=0.6, min_face=20)
    faces = detector.detect(image)          # image: BGR, BGRA or gray uint8 (OpenCV order)
    faces[0].box, faces[0].score, faces[0].landmarks   # (x, y, w, h), 0..1, 5×2 array or None

Back-ends:

- ``retinaface`` (default): RetinaFace MobileNet-0.25 (WIDER FACE), an ONNX graph shipped in
  ``ferkit/weights/detectors`` and run in ONNX Runtime, with our own priors, decoding and NMS. Finds frontal and
  turned faces down to about 16 px, gives five landmarks (eyes, nose, mouth corners).
- ``haar``: OpenCV's frontal-face Haar cascade (the seed projects' choice). No landmarks, frontal faces only.

Nothing is downloaded: both back-ends' weights ship with ferkit or with OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.sessions import PRECISIONS, open_session

DETECTOR_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "detectors"
DEFAULT_DETECTOR = "retinaface"
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")  # the subject's right/left


@dataclass
class Face:
    """One detected face. box is (x, y, w, h) in pixels of the image given to detect(); landmarks, when the
    back-end gives them, are 5×2 float (x, y): the eyes, the nose tip and the mouth corners (LANDMARK_NAMES)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray | None = field(default=None, repr=False)

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(left-most eye in the image, right-most eye in the image), or None without landmarks."""
        if self.landmarks is None:
            return None
        a, b = self.landmarks[0], self.landmarks[1]
        return (a, b) if a[0] <= b[0] else (b, a)


_REGISTRY: dict[str, type] = {}


def register_detector(name: str):
    def wrap(cls):
        _REGISTRY[name] = cls
        cls.name = name
        return cls
    return wrap


def list_detectors() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(name: str | "FaceDetector" | None = None, **kwargs) -> "FaceDetector":
    """A detector by back-end name (or an existing FaceDetector, returned as is)."""
    if isinstance(name, FaceDetector):
        return name
    name = name or DEFAULT_DETECTOR
    if name not in _REGISTRY:
        raise FerkitError(f"unknown face detector {name!r}; choose from {', '.join(list_detectors())}")
    return _REGISTRY[name](**kwargs)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """BGR uint8 from gray, BGR, BGRA or 16-bit input."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise FerkitError(f"unsupported image shape {image.shape}")


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression; boxes are N×4 (x1, y1, x2, y2)."""
    order = np.argsort(-scores)
    keep = []
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class FaceDetector:
    """Base class: subclasses implement _detect(bgr) → (boxes N×4 x1y1x2y2 float, scores N, landmarks N×5×2|None)
    in the coordinates of the image they are given. This class handles colour conversion, the confidence
    threshold, the minimum face size, clipping to the image and sorting (largest face first)."""

    name = "base"

    def __init__(self, threshold: float = 0.6, min_face: int = 20):
        if not 0.0 <= threshold <= 1.0:
            raise FerkitError(f"detector threshold must be within 0..1, got {threshold}")
        if min_face < 1:
            raise FerkitError(f"minimum face size must be at least 1 pixel, got {min_face}")
        self.threshold = float(threshold)
        self.min_face = int(min_face)

    def _detect(self, bgr: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    def detect(self, image: np.ndarray) -> list[Face]:
        bgr = _as_bgr(image)
        height, width = bgr.shape[:2]
        if height < 8 or width < 8:
            return []
        boxes, scores, landmarks = self._detect(bgr)
        faces = []
        for i in range(len(scores)):
            if scores[i] < self.threshold:
                continue
            x1, y1, x2, y2 = boxes[i]
            x1, y1 = max(0.0, float(x1)), max(0.0, float(y1))
            x2, y2 = min(float(width), float(x2)), min(float(height), float(y2))
            w, h = x2 - x1, y2 - y1
            if min(w, h) < self.min_face:
                continue
            box = (int(round(x1)), int(round(y1)), int(round(w)), int(round(h)))
            marks = None if landmarks is None else np.asarray(landmarks[i], np.float32).reshape(5, 2)
            faces.append(Face(box, float(scores[i]), marks))
        faces.sort(key=lambda f: -f.box[2] * f.box[3])
        return faces

    def __call__(self, image):
        return self.detect(image)

    def __repr__(self):
        return f"{type(self).__name__}(threshold={self.threshold}, min_face={self.min_face})"


@register_detector("retinaface")
class RetinaFaceDetector(FaceDetector):
    """RetinaFace MobileNet-0.25 in ONNX Runtime.

    Images are scaled so that the long side is at most max_side (default 640) before detection; when min_face
    is large, they are scaled further so the smallest wanted face still spans about 48 px (the smallest
    anchor is 16 px), which makes detection of big faces much faster.

    precision: fp32 (also what "auto" means) or int8, the graph `ferkit quantize --detector` makes. On a 2-core
    AVX2 EPYC the INT8 graph was no faster a 640×480 frame and found 76.5% of the faces of bench/detection.py
    against 79.0% (docs/benchmarks.md), so it runs only when asked for.
    """

    MEAN = (104.0, 117.0, 123.0)
    STEPS = (8, 16, 32)
    MIN_SIZES = ((16, 32), (64, 128), (256, 512))
    VARIANCE = (0.1, 0.2)
    SMALLEST_FACE = 48  # px: the smallest wanted face (min_face) is kept at least this big at detection scale

    def __init__(self, threshold: float = 0.6, min_face: int = 20, max_side: int | None = 640,
                 nms_threshold: float = 0.4, threads: int | None = None, model_path: str | Path | None = None,
                 precision: str = "auto", device: str = "auto"):
        super().__init__(threshold, min_face)
        if precision not in PRECISIONS:
            raise FerkitError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        int8 = DETECTOR_WEIGHTS / "retinaface_mnet025.int8.onnx"
        if model_path:
            path = Path(model_path)
        elif precision == "int8":  # auto stays fp32: INT8 saved no time and cost recall (docs/benchmarks.md)
            path = int8
        else:
            path = DETECTOR_WEIGHTS / "retinaface_mnet025.onnx"
        if not path.is_file():
            raise FerkitError(f"face detector weights missing: {path} (reinstall ferkit)")
        self.session = open_session(path, threads, device)
        self.precision = "int8" if path.name.endswith(".int8.onnx") else "fp32"
        self.max_side = max_side
        self.nms_threshold = nms_threshold
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def scale_for(self, height: int, width: int) -> float:
        scale = 1.0
        if self.max_side:
            scale = min(scale, self.max_side / max(height, width))
        scale = min(scale, max(self.SMALLEST_FACE / max(self.min_face, 1), 0.0))
        # never shrink below 32 px on the short side, where the network sees nothing useful
        return max(scale, min(1.0, 32.0 / min(height, width)))

    def priors(self, height: int, width: int) -> np.ndarray:
        """(cx, cy, w, h) prior boxes in pixels, in the network's output order."""
        key = (height, width)
        if key not in self._priors:
            parts = []
            for step, sizes in zip(self.STEPS, self.MIN_SIZES):
                rows, cols = math.ceil(height / step), math.ceil(width / step)
                ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
                centres = np.stack([(xs.ravel() + 0.5) * step, (ys.ravel() + 0.5) * step], axis=1)
                for_sizes = [np.hstack([centres, np.full((len(centres), 2), s, np.float32)]) for s in sizes]
                parts.append(np.stack(for_sizes, axis=1).reshape(-1, 4))  # sizes vary fastest
            self._priors[key] = np.concatenate(parts).astype(np.float32)
        return self._priors[key]

    def prepare(self, bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """(the network's input blob, the scale it was resized by) for a BGR image."""
        height, width = bgr.shape[:2]
        scale = self.scale_for(height, width)
        if scale < 1.0:
            small = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                               interpolation=cv2.INTER_AREA)
        else:
            small, scale = bgr, 1.0
        sh, sw = small.shape[:2]
        return cv2.dnn.blobFromImage(small, 1.0, (sw, sh), self.MEAN, swapRB=False, crop=False), scale

    def _detect(self, bgr: np.ndarray):
        blob, scale = self.prepare(bgr)
        sh, sw = blob.shape[2:]
        loc, conf, marks = self.session.run(None, {"input": blob})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores >= min(self.threshold, 0.99))
        if keep.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        priors = self.priors(sh, sw)
        if priors.shape[0] != loc.shape[1]:
            raise FerkitError(f"face detector output has {loc.shape[1]} boxes, expected {priors.shape[0]}")
        p, l, m, s = priors[keep], loc[0, keep], marks[0, keep], scores[keep]
        v0, v1 = self.VARIANCE
        centres = p[:, :2] + l[:, :2] * v0 * p[:, 2:]
        sizes = p[:, 2:] * np.exp(l[:, 2:] * v1)
        boxes = np.hstack([centres - sizes / 2, centres + sizes / 2])
        points = p[:, None, :2] + m.reshape(-1, 5, 2) * v0 * p[:, None, 2:]
        kept = nms(boxes, s, self.nms_threshold)
        return boxes[kept] / scale, s[kept], points[kept] / scale


@register_detector("haar")
class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade (ships inside opencv-python). No landmarks, so no eye alignment.

    Its score is a logistic squash of the cascade's last-stage weight, so threshold 0.5 keeps every detection
    the cascade makes with min_neighbors neighbours; raise it to be stricter."""

    def __init__(self, threshold: float = 0.5, min_face: int = 20, scale_factor: float = 1.1,
                 min_neighbors: int = 5, cascade: str = "haarcascade_frontalface_default.xml"):
        super().__init__(threshold, min_face)
        path = Path(cv2.data.haarcascades) / cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FerkitError(f"cannot load the Haar cascade {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def _detect(self, bgr: np.ndarray):
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        rects, _, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_face, self.min_face), outputRejectLevels=True)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        weights = np.asarray(weights, np.float32).reshape(-1)
        boxes = np.hstack([rects[:, :2], rects[:, :2] + rects[:, 2:]])
        return boxes, 1.0 / (1.0 + np.exp(-weights)), None
