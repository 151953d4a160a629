"""Finding a model by name or path: shipped names (weights inside the package), run folders, checkpoint files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def shipped_models() -> dict[str, Path]:
    """name → checkpoint for every model that ships inside the package (no network needed)."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"))}


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_dir():
        if (path / "best.pt").is_file():
            return path / "best.pt"
        raise FerkitError(f"{path}: run folder has no best.pt")
    if path.is_file():
        return path
    names = ", ".join(shipped) or "none"
    raise FerkitError(f"unknown model {str(name_or_path)!r}: not a file, run folder or shipped model ({names})")


class TorchClassifier:
    """A trained expression classifier on 48×48 uint8 crops, as a checkpoint describes it."""

    def __init__(self, state: dict, source: str = ""):
        from ferkit.train.checkpoint import build_from_checkpoint

        self.model = build_from_checkpoint(state)
        self.labels = tuple(state["labels"])
        self.tta = list(state.get("tta", []))
        self.metrics = state.get("metrics", {})
        # temperature scaling fitted on PublicTest by `ferkit calibrate` (1.0: the raw model)
        self.temperature = float(state.get("temperature", 1.0))
        self.arch = state["arch"]
        self.source = source
        self.state = state

    @classmethod
    def load(cls, name_or_path: str | Path = "default") -> "TorchClassifier":
        from ferkit.train.checkpoint import load_checkpoint

        path = resolve_checkpoint(name_or_path)
        state = load_checkpoint(path)
        try:
            return cls(state, str(path))
        except FerkitError as exc:
            raise FerkitError(f"{path}: {exc}") from None

    def predict_proba(self, crops: np.ndarray, tta=None, batch_size: int = 512,
                      temperature: float | None = None) -> np.ndarray:
        """Probabilities with the model's own temperature (temperature=1.0 for the raw, uncalibrated model)."""
        from ferkit.runtime.torch_infer import predict_proba

        return predict_proba(self.model, crops, batch_size=batch_size, tta=self.tta if tta is None else tta,
                             temperature=self.temperature if temperature is None else float(temperature))

    def predict_logits(self, crops: np.ndarray, tta=None, batch_size: int = 512) -> np.ndarray:
        """Raw logits, views×N×classes (see ferkit.runtime.torch_infer.predict_logits)."""
        from ferkit.runtime.torch_infer import predict_logits

        return predict_logits(self.model, crops, batch_size=batch_size, tta=self.tta if tta is None else tta)
