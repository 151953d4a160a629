"""The classifier in ONNX Runtime: the same interface as TorchClassifier (predict_proba, labels, tta), no torch.

`OnnxClassifier.load(name_or_path)` takes an .onnx file (from `ferkit export`), or a shipped model name / run
folder / checkpoint: then the checkpoint is exported once and the .onnx kept in the cache,
``$FERKIT_CACHE/onnx/<checkpoint sha256>.onnx`` (default ``~/.cache/ferkit``), so later loads need neither the
export nor torch. A shipped model with a ready ``weights/NAME.onnx`` beside its .pt whose metadata names the
.pt's sha256 is used directly.

Precision: ``int8`` runs the quantised graph ``NAME.int8.onnx`` beside the checkpoint (``ferkit quantize`` makes
it; the shipped models have theirs), ``fp32`` the exported one, and ``auto`` the INT8 graph where it is the faster
(ferkit.sessions.uses_int8_by_default) and there is one. (The face detector's own ``auto`` is fp32: see
ferkit.vision.detect.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ferkit.classifier.tta import check_tta, tta_views_numpy
from ferkit.errors import FerkitError
from ferkit.files import cache_dir, file_sha256
from ferkit.sessions import PRECISIONS, open_session, uses_int8_by_default
from ferkit.vision.crop import normalise_numpy


def onnx_cache_dir() -> Path:
    return cache_dir() / "onnx"


def _read_metadata(path: Path) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def int8_path_for(checkpoint: Path) -> Path:
    """Where a checkpoint's INT8 graph lives: beside it, NAME.int8.onnx."""
    return checkpoint.with_name(f"{checkpoint.stem}.int8.onnx")


def int8_for_checkpoint(name_or_path) -> Path | None:
    """The INT8 graph beside a checkpoint, if there is one and it was made from this very checkpoint."""
    from ferkit.classifier.shipped import resolve_checkpoint

    checkpoint = resolve_checkpoint(name_or_path)
    path = int8_path_for(checkpoint)
    if not path.is_file():
        return None
    try:
        meta = _read_metadata(path)
    except Exception:  # noqa: BLE001 - a damaged file is as good as none
        return None
    return path if meta.get("checkpoint_sha256") == file_sha256(checkpoint) else None


def onnx_for_checkpoint(name_or_path) -> Path:
    """The .onnx for a checkpoint: shipped beside it, else cached, else exported now into the cache."""
    from ferkit.classifier.export import export_onnx
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

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "auto"):
        path = Path(path)
        self.session = open_session(path, threads, device)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if "labels" not in meta:
            raise FerkitError(f"{path}: not a ferkit ONNX model (no labels in its metadata)")
        self.labels = tuple(json.loads(meta["labels"]))
        self.tta = list(json.loads(meta.get("tta", "[]")))
        self.preprocess = json.loads(meta.get("preprocess", "{}"))
        self.arch = meta.get("arch", "")
        # the calibration temperature is part of the graph (export divides the logits by it); recorded here
        self.temperature = float(meta.get("temperature", 1.0))
        self.precision = meta.get("precision", "fp32")
        self.metadata = meta
        self.source = str(path)
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def load(cls, name_or_path="default", threads: int | None = None, precision: str = "auto",
             device: str = "auto") -> "OnnxClassifier":
        """A shipped name, run folder or checkpoint at the given precision, or an .onnx file as it is."""
        if precision not in PRECISIONS:
            raise FerkitError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        path = Path(str(name_or_path))
        if path.suffix.lower() == ".onnx":
            if not path.is_file():
                raise FerkitError(f"{path}: no such file")
            return cls(path, threads, device)
        from ferkit.classifier.shipped import resolve_checkpoint

        checkpoint = resolve_checkpoint(name_or_path)
        if precision == "int8" or (precision == "auto" and uses_int8_by_default(device)):
            int8 = cls._made_from(int8_path_for(checkpoint), checkpoint, threads, device)
            if int8 is not None:
                return int8
            if precision == "int8":
                raise FerkitError(f"{name_or_path}: no INT8 graph beside its checkpoint; make one with "
                                  f"`ferkit quantize --model {name_or_path} --data FER2013.csv`")
        beside = cls._made_from(checkpoint.with_suffix(".onnx"), checkpoint, threads, device)
        return beside or cls(onnx_for_checkpoint(checkpoint), threads, device)

    @classmethod
    def _made_from(cls, path: Path, checkpoint: Path, threads, device) -> "OnnxClassifier | None":
        """The classifier of the graph at `path` if there is one and it was made from this very checkpoint (its
        metadata names the checkpoint's sha256), else None: one session, opened once."""
        if not path.is_file():
            return None
        try:
            classifier = cls(path, threads, device)
        except FerkitError:  # a damaged or foreign file: as good as none
            return None
        return classifier if classifier.metadata.get("checkpoint_sha256") == file_sha256(checkpoint) else None

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
