"""The classifier in ONNX Runtime: the same interface as TorchClassifier (predict_proba, labels, tta), no torch.

`OnnxClassifier.load(name_or_path)` takes an .onnx file (from `ferkit export`), or a shipped model name / run
folder / checkpoint: then the checkpoint is exported once and the .onnx kept in the cache,
``$FERKIT_CACHE/onnx/<checkpoint sha256>.onnx`` (default ``~/.cache/ferkit``), so later loads need neither the
export nor torch. A shipped model with a ready ``weights/NAME.onnx`` beside its .pt whose metadata names the
.pt's sha256 is used directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ferkit.classifier.tta import check_tta, tta_views_numpy
from ferkit.errors import FerkitError
from ferkit.vision.crop import normalise_numpy


def onnx_cache_dir() -> Path:
    return Path(os.environ.get("FERKIT_CACHE") or Path.home() / ".cache" / "ferkit") / "onnx"


def _read_metadata(path: Path) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def onnx_for_checkpoint(name_or_path) -> Path:
    """The .onnx for a checkpoint: shipped beside it, else cached, else exported now into the cache."""
    from ferkit.classifier.export import export_onnx, file_sha256
    from ferkit.classifier.shipped import resolve_checkpoint

    checkpoint = resolve_checkpoint(name_or_path)
    digest = file_sha256(checkpoint)
    beside = checkpoint.with_suffix(".onnx")
    if beside.is_file():
        try:
            if _read_metadata(beside).get("checkpoint_sha256") == digest:
                return beside
        except Exception:  # noqa: BLE001 - a stale or damaged file beside the checkpoint: fall back to the cache
            pass
    cached = onnx_cache_dir() / f"{digest}.onnx"
    if not cached.is_file():
        export_onnx(checkpoint, cached)
    return cached


class OnnxClassifier:
    """Expression classifier on 48×48 uint8 crops in ONNX Runtime; flip TTA runs as one doubled batch."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for unreadable files
            raise FerkitError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if "labels" not in meta:
            raise FerkitError(f"{path}: not a ferkit ONNX model (no labels in its metadata)")
        self.labels = tuple(json.loads(meta["labels"]))
        self.tta = list(json.loads(meta.get("tta", "[]")))
        self.preprocess = json.loads(meta.get("preprocess", "{}"))
        self.arch = meta.get("arch", "")
        # the calibration temperature is part of the graph (export divides the logits by it); recorded here
        self.temperature = float(meta.get("temperature", 1.0))
        self.metadata = meta
        self.source = str(path)
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def load(cls, name_or_path="default", threads: int | None = None) -> "OnnxClassifier":
        path = Path(str(name_or_path))
        if path.suffix.lower() == ".onnx":
            if not path.is_file():
                raise FerkitError(f"{path}: no such file")
            return cls(path, threads)
        return cls(onnx_for_checkpoint(name_or_path), threads)

    def predict_proba(self, crops: np.ndarray, tta=None, batch_size: int = 256) -> np.ndarray:
        """uint8 N×48×48 crops → float32 N×classes probabilities (the mean over TTA views)."""
        modes = check_tta(self.tta if tta is None else tta)
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        out = []
        for start in range(0, len(crops), batch_size):
            x = normalise_numpy(crops[start:start + batch_size])
            views = tta_views_numpy(x, modes)
            batch = views[0] if len(views) == 1 else np.concatenate(views)
            probs = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
            out.append(probs.reshape(len(views), len(x), -1).mean(0).astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)
