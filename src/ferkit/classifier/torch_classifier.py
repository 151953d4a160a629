"""The classifier in PyTorch, built from a checkpoint: what evaluation, calibration, reports and teachers use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.classifier.checkpoint import Checkpoint, load_checkpoint
from ferkit.classifier.shipped import resolve_checkpoint
from ferkit.errors import FerkitError


class TorchClassifier:
    """A trained expression classifier on 48×48 uint8 crops, as a checkpoint describes it (implements
    ferkit.classifier.protocol.Classifier)."""

    def __init__(self, checkpoint: Checkpoint, source: str = ""):
        self.checkpoint = checkpoint
        self.info = checkpoint.info
        self.model = checkpoint.build_model()
        self.labels = tuple(self.info.labels)
        self.tta = list(self.info.tta)
        self.metrics = self.info.metrics
        # temperature scaling fitted on PublicTest by `ferkit calibrate` (1.0: the raw model)
        self.temperature = self.info.temperature
        self.arch = self.info.arch
        self.source = source

    @classmethod
    def load(cls, name_or_path: str | Path = "default") -> "TorchClassifier":
        path = resolve_checkpoint(name_or_path)
        try:
            return cls(load_checkpoint(path), str(path))
        except FerkitError as exc:
            message = str(exc)
            raise FerkitError(message if message.startswith(str(path)) else f"{path}: {message}") from None

    def predict_proba(self, crops: np.ndarray, tta=None, batch_size: int = 512,
                      temperature: float | None = None) -> np.ndarray:
        """Probabilities with the model's own temperature (temperature=1.0 for the raw, uncalibrated model)."""
        from ferkit.classifier.torch_inference import predict_proba

        return predict_proba(self.model, crops, batch_size=batch_size, tta=self.tta if tta is None else tta,
                             temperature=self.temperature if temperature is None else float(temperature))

    def predict_logits(self, crops: np.ndarray, tta=None, batch_size: int = 512) -> np.ndarray:
        """Raw logits, views×N×classes (see ferkit.classifier.torch_inference.predict_logits)."""
        from ferkit.classifier.torch_inference import predict_logits

        return predict_logits(self.model, crops, batch_size=batch_size, tta=self.tta if tta is None else tta)
