"""Checkpoints: the one file format for every model ferkit writes, typed.

A checkpoint file holds three parts:

- ``info``, a :class:`ModelInfo`: everything needed to use the weights (architecture and its arguments, labels,
  preprocessing, test-time augmentation, calibration temperature, ensemble members) and where they came from
  (the training config that made them, the data they trained on, validation metrics, epoch, training time,
  sources of a soup or a copy). The labels are FER2013's, FER+'s or a folder set's own class names; the net's
  output count is the number of labels;
- ``model_state``: the weights;
- ``training``, a :class:`TrainingState`, in a run's ``last.pt`` only: what an exact resume needs.

:func:`save_checkpoint` is the one writer (atomic: a run killed while saving keeps the previous file),
:func:`load_checkpoint` the one reader, :func:`slim` drops what recognition does not need. Files of the first
format (``ferkit-checkpoint-v1``: one flat dict, as every model shipped before this format was) still load.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.vision.crop import PREPROCESS

FORMAT = "ferkit-checkpoint-v2"
V1_FORMAT = "ferkit-checkpoint-v1"


@dataclass
class ModelInfo:
    """What a set of weights is and where it came from."""

    arch: str                                                # registered architecture, or "ensemble"
    arch_kwargs: dict = field(default_factory=dict)          # its arguments (num_classes comes from labels)
    labels: tuple = EMOTIONS                                 # output order
    preprocess: dict = field(default_factory=lambda: dict(PREPROCESS))  # the crop the model was trained on
    tta: list = field(default_factory=list)                  # test-time augmentation recognition applies
    temperature: float = 1.0                                 # fitted by `ferkit calibrate`; 1 = the raw model
    calibration: dict = field(default_factory=dict)          # the record of that fit
    metrics: dict = field(default_factory=dict)              # val_split, val_acc, val_macro_f1, train_acc
    members: list = field(default_factory=list)              # an ensemble: one spec per member net
    parameters: int = 0
    config: dict = field(default_factory=dict)               # what made it: a TrainConfig, {"ensemble": [...]}
    trained_on: dict = field(default_factory=dict)           # {"data": absolute path, "split": name or None}
    epoch: int = 0
    elapsed_s: float = 0.0                                   # training time, summed across resumes
    origin: dict = field(default_factory=dict)               # soups and widened copies: their sources

    def __post_init__(self):
        self.labels = tuple(self.labels)
        self.tta = list(self.tta)
        self.temperature = float(self.temperature)


@dataclass
class TrainingState:
    """What `ferkit train --resume` needs beyond the weights to continue exactly."""

    optimizer: dict
    scheduler: dict
    history: list = field(default_factory=list)
    best_val_acc: float = -1.0
    stale_epochs: int = 0
    averages: dict = field(default_factory=dict)  # {"ema": state} or {"swa": state} (ferkit.train.averaging)


@dataclass
class Checkpoint:
    info: ModelInfo
    model_state: dict
    training: TrainingState | None = None

    def build_model(self) -> torch.nn.Module:
        """The network in eval mode, weights loaded (fp16 files are widened back to fp32)."""
        from ferkit.models import create_model
        from ferkit.models.ensemble import build_ensemble

        info = self.info
        try:
            if info.members:
                model = build_ensemble(info.members, len(info.labels))
            else:
                model = create_model(info.arch, **{"num_classes": len(info.labels), **info.arch_kwargs})
        except KeyError as exc:  # an architecture this version does not have (a newer ferkit, a stripped file)
            raise FerkitError(str(exc).strip('"')) from None
        weights = self.model_state
        if any(v.dtype == torch.float16 for v in weights.values()):
            weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:  # a damaged or hand-edited checkpoint: name the first mismatch, not a traceback
            detail = str(exc).strip().splitlines()[-1].strip()
            raise FerkitError(f"its weights do not fit a {info.arch} model: {detail}") from None
        return model.eval()


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write atomically: the file appears whole or the previous one stays."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    payload = {"format": FORMAT, "info": asdict(checkpoint.info), "model_state": checkpoint.model_state,
               "training": asdict(checkpoint.training) if checkpoint.training is not None else None}
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # a full disk, a folder that went away (torch wraps some as RuntimeError)
        tmp.unlink(missing_ok=True)
        raise FerkitError(f"{path}: cannot save the checkpoint ({getattr(exc, 'strerror', None) or exc})") from None
    return path


def remove_partial_saves(folder: str | Path) -> list[Path]:
    """Delete the temporary files of saves that a kill interrupted (the checkpoints themselves are whole)."""
    leftovers = sorted(Path(folder).glob("*.pt.tmp"))
    for tmp in leftovers:
        tmp.unlink(missing_ok=True)
    return leftovers


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise FerkitError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise FerkitError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    kind = payload.get("format") if isinstance(payload, dict) else None
    try:
        if kind == FORMAT:
            training = payload.get("training")
            return Checkpoint(_dataclass_from(ModelInfo, payload["info"]), payload["model_state"],
                              _dataclass_from(TrainingState, training) if training else None)
        if kind == V1_FORMAT:
            return _from_v1(payload)
    except (KeyError, TypeError) as exc:
        raise FerkitError(f"{path}: a damaged ferkit checkpoint ({exc})") from None
    raise FerkitError(f"{path}: not a ferkit checkpoint")


def slim(checkpoint: Checkpoint, half: bool = False) -> Checkpoint:
    """The model alone, without the training state (what shipping, soups and transfers keep); half: fp16 weights
    (a smaller file to carry; loading widens them back)."""
    weights = checkpoint.model_state
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    return Checkpoint(replace(checkpoint.info), weights)


def _dataclass_from(cls, values: dict):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


# The flat dict of format v1, key by key: ModelInfo fields kept their names; the rest moved.
_V1_ORIGIN = ("soup", "widened_from")
_V1_AVERAGES = {"ema_state": "ema", "swa_state": "swa"}


def _from_v1(state: dict) -> Checkpoint:
    info = _dataclass_from(ModelInfo, {k: v for k, v in state.items() if v is not None})
    info.origin = {k: state[k] for k in _V1_ORIGIN if k in state}
    training = None
    if "optimizer_state" in state:
        training = TrainingState(optimizer=state["optimizer_state"], scheduler=state["scheduler_state"],
                                 history=state.get("history", []), best_val_acc=state.get("best_val_acc", -1.0),
                                 stale_epochs=state.get("stale_epochs", 0),
                                 averages={name: state[key] for key, name in _V1_AVERAGES.items() if key in state})
    return Checkpoint(info, state["model_state"], training)
