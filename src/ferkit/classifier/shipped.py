"""Finding a model by name or path: shipped names (weights inside the package), run folders, checkpoint files."""

from __future__ import annotations

from pathlib import Path

from ferkit.errors import FerkitError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def shipped_models() -> dict[str, Path]:
    """name → checkpoint for every model that ships inside the package (no network needed)."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"))}


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """The checkpoint file of a shipped model name, a run folder (its best.pt) or a checkpoint path."""
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
