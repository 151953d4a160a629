"""Checkpoints carry everything needed to resume or to use a model: weights, optimiser, scheduler, epoch,
the full config, the labels and the preprocessing spec."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ferkit.errors import FerkitError

FORMAT = "ferkit-checkpoint-v1"


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Atomic: a run killed while saving leaves the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FerkitError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise FerkitError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FerkitError(f"{path}: not a ferkit checkpoint")
    return state


def build_from_checkpoint(state: dict) -> torch.nn.Module:
    from ferkit.models import create_model
    from ferkit.models.ensemble import build_ensemble

    num_classes = len(state.get("labels") or [])  # FER+ models have 8 outputs
    try:
        if state.get("members"):  # an ensemble of trained nets (ferkit.runtime.ensemble)
            model = build_ensemble(state["members"], num_classes)
        else:
            kwargs = dict(state.get("arch_kwargs", {}))
            if num_classes:
                kwargs.setdefault("num_classes", num_classes)
            model = create_model(state["arch"], **kwargs)
    except KeyError as exc:  # an architecture this version does not have (a newer ferkit, or a stripped checkpoint)
        raise FerkitError(str(exc).strip('"')) from None
    weights = state["model_state"]
    if any(v.dtype == torch.float16 for v in weights.values()):
        weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # a damaged or hand-edited checkpoint: name the first mismatch, not a traceback
        detail = str(exc).strip().splitlines()[-1].strip()
        raise FerkitError(f"its weights do not fit a {state['arch']} model: {detail}") from None
    model.eval()
    return model
