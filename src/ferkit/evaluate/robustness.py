"""Robustness: accuracy against the strength of image perturbations, with and without crop preprocessing.

Each perturbation works on uint8 N×48×48 face crops and is exactly the identity at its ``identity`` level
(gamma 1, contrast 1, everything else 0), so every curve passes through the clean accuracy. Randomness (noise,
patch positions) comes from a generator seeded by the level, so a curve is the same on every run and for every
model. Preprocessing (ferkit.vision.align.enhance: equalize, CLAHE, ...) is applied after the perturbation, the
way recognition applies it to a crop cut from a photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from ferkit.vision.align import check_preprocess, enhance

# The eye line of a FER2013 crop, as a share of its height: the darkest row of the mean of the first 5000 faces
# (brows and eyes) is row 17 of 48.
EYE_LINE = 0.37
MASK_FILL = 200   # a light surgical-mask gray
GLASSES_FILL = 0  # dark glasses


def _lut(images: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table.astype(np.uint8)[images]


def gamma(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """out = 255 (x / 255) ** gamma: gamma > 1 darkens, < 1 brightens."""
    if level == 1:
        return images.copy()
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** float(level), 0, 255).round()
    return _lut(images, table)


def contrast(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """Each crop's deviation from its own mean scaled by level (< 1 flatter, > 1 harsher)."""
    if level == 1:
        return images.copy()
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return np.clip(mean + float(level) * (x - mean), 0, 255).round().astype(np.uint8)


def blur(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """Gaussian blur with sigma = level pixels (of the 48×48 crop)."""
    if level == 0:
        return images.copy()
    return np.stack([cv2.GaussianBlur(im, (0, 0), sigmaX=float(level), borderType=cv2.BORDER_REFLECT)
                     for im in images])


def noise(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """Additive Gaussian noise with standard deviation level gray levels."""
    if level == 0:
        return images.copy()
    rng = rng if rng is not None else np.random.default_rng(0)
    x = images.astype(np.float32) + rng.normal(0.0, float(level), images.shape).astype(np.float32)
    return np.clip(x, 0, 255).round().astype(np.uint8)


def jpeg(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """JPEG round trip at quality level (0: not compressed at all)."""
    if level == 0:
        return images.copy()
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(level)]
    return np.stack([cv2.imdecode(cv2.imencode(".jpg", im, params)[1], cv2.IMREAD_GRAYSCALE) for im in images])


def rotation(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """Rotation by level degrees (counter-clockwise) about the crop's centre; borders repeat."""
    if level == 0:
        return images.copy()
    h, w = images.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(level), 1.0)
    return np.stack([cv2.warpAffine(im, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for im in images])


def eye_band(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """A dark horizontal band centred on the eye line, level × the crop's height tall (like dark glasses)."""
    if level == 0:
        return images.copy()
    h = images.shape[1]
    half = max(1, int(round(level * h / 2)))
    centre = int(round(EYE_LINE * h))
    out = images.copy()
    out[:, max(0, centre - half):min(h, centre + half)] = GLASSES_FILL
    return out


def lower_face(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """The bottom level × height of the crop covered in light gray (like a surgical mask)."""
    if level == 0:
        return images.copy()
    h = images.shape[1]
    rows = max(1, int(round(level * h)))
    out = images.copy()
    out[:, h - rows:] = MASK_FILL
    return out


PATCH = 8  # side of a random occluding patch, pixels


def patches(images: np.ndarray, level: float, rng=None) -> np.ndarray:
    """Black PATCH×PATCH squares at random places until about level of each crop's area is covered."""
    if level == 0:
        return images.copy()
    rng = rng if rng is not None else np.random.default_rng(0)
    n, h, w = images.shape
    count = max(1, int(round(level * h * w / (PATCH * PATCH))))
    ys = rng.integers(0, h - PATCH + 1, (n, count))
    xs = rng.integers(0, w - PATCH + 1, (n, count))
    out = images.copy()
    for i in range(n):
        for y, x in zip(ys[i], xs[i]):
            out[i, y:y + PATCH, x:x + PATCH] = 0
    return out


@dataclass(frozen=True)
class Perturbation:
    name: str
    title: str
    apply: Callable
    levels: tuple
    identity: float
    xlabel: str
    light: bool = False  # a lighting change: also measured with each preprocessing option
    tick: Callable = field(default=lambda v: f"{v:g}")


PERTURBATIONS = {p.name: p for p in (
    Perturbation("gamma", "darkening / brightening", gamma, (0.25, 0.35, 0.5, 0.7, 1, 1.4, 2, 2.8, 4), 1,
                 "gamma (< 1 brighter, > 1 darker)", light=True),
    Perturbation("contrast", "contrast", contrast, (0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2), 1,
                 "contrast factor", light=True),
    Perturbation("blur", "Gaussian blur", blur, (0, 0.5, 1, 1.5, 2, 3), 0, "sigma (pixels of 48)"),
    Perturbation("noise", "Gaussian noise", noise, (0, 5, 10, 20, 30, 45), 0, "noise std (gray levels)"),
    Perturbation("jpeg", "JPEG compression", jpeg, (0, 90, 70, 50, 30, 20, 10, 5), 0, "JPEG quality",
                 tick=lambda v: "none" if v == 0 else f"{v:g}"),
    Perturbation("rotation", "rotation", rotation, (-20, -10, -5, 0, 5, 10, 20), 0, "degrees"),
    Perturbation("eye_band", "eye-band occlusion (glasses)", eye_band, (0, 0.1, 0.15, 0.2, 0.25, 0.3), 0,
                 "band height (share of crop)"),
    Perturbation("lower_face", "lower-face occlusion (mask)", lower_face, (0, 0.2, 0.3, 0.4, 0.5), 0,
                 "covered share of height"),
    Perturbation("patches", "random patches", patches, (0, 0.05, 0.1, 0.2, 0.3, 0.4), 0,
                 "covered share of area"),
)}

DEFAULT_PREPROCESS = ("none", "equalize", "clahe")


def perturb(images: np.ndarray, name: str, level: float, seed: int = 0) -> np.ndarray:
    """One perturbation at one level, reproducibly (the generator is seeded by seed, name and level)."""
    p = PERTURBATIONS[name]
    key = [seed, sum(map(ord, name)), int(round(float(level) * 1000)) % (2 ** 31)]
    return p.apply(np.asarray(images, np.uint8), level, np.random.default_rng(key))


def preprocess_batch(images: np.ndarray, option: str) -> np.ndarray:
    options = check_preprocess(option)
    if not options:
        return images
    return np.stack([enhance(np.ascontiguousarray(im), options) for im in images])


def plan(perturbations=None, preprocess=DEFAULT_PREPROCESS) -> list[tuple[str, str, float]]:
    """Every (preprocessing, perturbation, level) pass to run: lighting perturbations with every preprocessing
    option, the others with none only."""
    names = list(perturbations or PERTURBATIONS)
    for name in names:
        if name not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
    passes = []
    for option in preprocess:
        for name in names:
            if option != "none" and not PERTURBATIONS[name].light:
                continue
            passes += [(option, name, level) for level in PERTURBATIONS[name].levels]
    return passes


def robustness_curves(classifier, images: np.ndarray, labels: np.ndarray, perturbations=None,
                      preprocess=DEFAULT_PREPROCESS, tta=(), seed: int = 0, batch_size: int = 512,
                      progress=None) -> dict:
    """{preprocessing: {perturbation: [accuracy at each level]}}; the clean pass of each preprocessing option
    is run once and shared by the identity level of every perturbation. progress(n) is called after each pass."""
    labels = np.asarray(labels)
    clean: dict[str, float] = {}
    results: dict[str, dict[str, list[float]]] = {}

    def accuracy(batch: np.ndarray) -> float:
        probs = classifier.predict_proba(batch, tta=list(tta), batch_size=batch_size)
        return float((probs.argmax(1) == labels).mean()) if len(labels) else 0.0

    for option, name, level in plan(perturbations, preprocess):
        p = PERTURBATIONS[name]
        if level == p.identity:
            if option not in clean:
                clean[option] = accuracy(preprocess_batch(images, option))
            value = clean[option]
        else:
            value = accuracy(preprocess_batch(perturb(images, name, level, seed), option))
        results.setdefault(option, {}).setdefault(name, []).append(value)
        if progress:
            progress(1)
    return results


def stratified_sample(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of exactly size items keeping each class's share (all of them when size >= len). With one
    seed, a smaller sample is drawn from the front of the same per-class shuffles as a larger one."""
    labels = np.asarray(labels)
    if size <= 0 or size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    takes = class_quotas(np.array([len(m) for m in members]), size)
    return np.sort(np.concatenate([m[:take] for m, take in zip(members, takes)]))


def class_quotas(counts: np.ndarray, size: int) -> np.ndarray:
    """How many of each class a sample of `size` takes: one of each first (the largest classes when size is
    smaller than the number of classes), then one at a time to the class whose share is furthest behind
    (Sainte-Laguë). The quotas sum to size exactly (rounding each class's share on its own can overshoot: 101 for
    --subset 100) and never shrink as size grows, so a smaller sample stays part of a larger one."""
    counts = np.asarray(counts, np.int64)
    takes = np.zeros(len(counts), np.int64)
    if size < np.count_nonzero(counts):
        takes[np.argsort(-counts, kind="stable")[:size]] = 1
        return takes
    takes[:] = np.minimum(counts, 1)
    for _ in range(size - int(takes.sum())):
        priority = np.where(takes < counts, counts / (2 * takes + 1), -1.0)
        takes[int(np.argmax(priority))] += 1
    return takes
