"""The classifier interface every back-end implements, and the one way to load a classifier by name.

A classifier turns uint8 N×48×48 face crops (ferkit.vision.crop) into N×classes probabilities. Two back-ends
implement it: OnnxClassifier (ONNX Runtime, what recognition uses: no torch) and TorchClassifier (PyTorch, what
training, evaluation and reports use). A new runtime (another execution provider, a quantised model) plugs in by
implementing this Protocol; the Recognizer, the evaluation and the web app need no change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ferkit.errors import FerkitError

BACKENDS = ("onnx", "torch")


@runtime_checkable
class Classifier(Protocol):
    labels: tuple            # class names, in output order
    tta: list                # the model's own test-time augmentation ([], ["flip"], ["flip", "shift"])
    temperature: float       # the calibration temperature its probabilities already include
    source: str              # the file it was loaded from

    def predict_proba(self, crops: np.ndarray, tta=None, batch_size: int = 256) -> np.ndarray:
        """uint8 N×48×48 crops → float32 N×classes probabilities; tta None: the model's own."""


def load_classifier(model="default", backend: str = "onnx", threads: int | None = None, precision: str = "auto",
                    device: str = "auto") -> Classifier:
    """A classifier from a shipped name, run folder, checkpoint or .onnx file (or a classifier, returned as is).
    precision and device choose the ONNX Runtime graph and provider (ferkit.classifier.onnx_classifier)."""
    if not isinstance(model, (str, Path)):
        return model
    if backend == "onnx":
        from ferkit.classifier.onnx_classifier import OnnxClassifier

        return OnnxClassifier.load(model, threads=threads, precision=precision, device=device)
    if backend == "torch":
        if Path(str(model)).suffix.lower() == ".onnx":
            raise FerkitError("an .onnx model runs only with the onnx backend")
        if precision == "int8":
            raise FerkitError("INT8 graphs run in ONNX Runtime: use the onnx backend for --precision int8")
        from ferkit.classifier.torch_classifier import TorchClassifier

        return TorchClassifier.load(model)
    raise FerkitError(f"unknown backend {backend!r}; choose {' or '.join(BACKENDS)}")
