"""Calibration: expected calibration error, reliability bins, and temperature scaling.

Temperature scaling divides a model's logits by one number T before the softmax: the predicted class never
changes, only how confident the probabilities are. T is fitted by minimising the negative log-likelihood on
PublicTest (never on PrivateTest, which only reports) and stored in the checkpoint as ``temperature``; every
classifier built from that checkpoint (PyTorch, and ONNX, whose exported graph divides by it) then uses it.

Logits come as views × N × C (one view without test-time augmentation, two with flip): the calibrated
probabilities are the mean over views of softmax(logits / T), exactly what ``predict_proba`` computes.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_BINS = 15
T_RANGE = (0.05, 20.0)


def _views(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    return logits[None] if logits.ndim == 2 else logits


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities N×C from logits N×C or views×N×C (mean over views), after dividing by temperature."""
    z = _views(logits) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).mean(axis=0)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    labels = np.asarray(labels)
    p = np.asarray(probs, np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean()) if len(labels) else 0.0


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> dict:
    """Equal-width confidence bins: per bin the count, mean confidence and accuracy of the top prediction."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels).astype(float) if len(probs) else np.zeros(0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds confidences in (edges[i], edges[i+1]]; a confidence of exactly 0 goes into the first bin
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(int)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    acc_sum = np.bincount(index, weights=correct, minlength=bins)
    safe = np.maximum(count, 1)
    return {"edges": edges, "count": count, "confidence": np.where(count > 0, conf_sum / safe, 0.0),
            "accuracy": np.where(count > 0, acc_sum / safe, 0.0)}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """ECE: the count-weighted mean |accuracy − confidence| over equal-width confidence bins."""
    table = reliability_bins(probs, labels, bins)
    total = table["count"].sum()
    if total == 0:
        return 0.0
    return float((table["count"] * np.abs(table["accuracy"] - table["confidence"])).sum() / total)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds=T_RANGE, tol: float = 1e-4) -> float:
    """The T within bounds minimising the NLL of softmax(logits / T) (views averaged): golden-section search
    on log T, deterministic, no optimiser state."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 1.0
    z = _views(logits)

    def loss(log_t: float) -> float:
        return nll(softmax(z, math.exp(log_t)), labels)

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    while hi - lo > tol:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return float(math.exp((lo + hi) / 2))


def calibration_summary(logits: np.ndarray, labels: np.ndarray, temperature: float,
                        bins: int = DEFAULT_BINS) -> dict:
    """NLL and ECE of the raw model (T = 1) and of the model at the given temperature, on one split."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {"temperature": float(temperature), "count": int(len(labels)),
            "nll_before": nll(before, labels), "nll_after": nll(after, labels),
            "ece_before": expected_calibration_error(before, labels, bins),
            "ece_after": expected_calibration_error(after, labels, bins)}


def calibrate_checkpoint(model, data, split: str = "PublicTest", out=None, subset: int = 0, clean: bool = False,
                         seed: int = 0, skip_bad_rows: bool = False) -> dict:
    """Fit the temperature of a checkpoint on a validation split and write it into the checkpoint file (or into
    out, a copy). Returns the calibration record stored beside it. PrivateTest is refused: it only reports."""
    from dataclasses import replace
    from pathlib import Path

    from ferkit.classifier.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from ferkit.classifier.shipped import resolve_checkpoint
    from ferkit.classifier.torch_classifier import TorchClassifier
    from ferkit.errors import FerkitError
    from ferkit.evaluate.robustness import stratified_sample
    from ferkit.evaluate.scoring import evaluation_data
    from ferkit.labels import USAGES

    if split == "PrivateTest":
        raise FerkitError("the temperature is never fitted on PrivateTest (it only reports); use PublicTest")
    if split not in USAGES:
        raise FerkitError(f"unknown split {split!r}; fit on PublicTest (or Training)")
    path = resolve_checkpoint(model)
    checkpoint = load_checkpoint(path)
    classifier = TorchClassifier(checkpoint, str(path))
    faces = evaluation_data(data, split, classifier.labels, clean=clean, skip_bad_rows=skip_bad_rows)
    if faces.usage is None:
        raise FerkitError(f"{data}: no {faces.split_name(split)} split to fit the temperature on (a FER2013 csv, "
                          "or a folder set with val/ beside train/)")
    if subset:
        faces = faces.subset(stratified_sample(faces.labels, subset, seed))
    logits = classifier.predict_logits(faces.images)
    temperature = fit_temperature(logits, faces.labels)
    record = {**calibration_summary(logits, faces.labels, temperature), "split": faces.split_name(split),
              "data": Path(data).name, "tta": list(classifier.tta),
              "previous_temperature": checkpoint.info.temperature}
    target = Path(out) if out else path
    target.parent.mkdir(parents=True, exist_ok=True)
    info = replace(checkpoint.info, temperature=temperature, calibration=record)
    save_checkpoint(target, Checkpoint(info, checkpoint.model_state, checkpoint.training))
    record["checkpoint"] = str(target)
    return record
