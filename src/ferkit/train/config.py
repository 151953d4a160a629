"""Training configuration: plain values, loadable from YAML, overridable from the command line, checked in one place.

Fields with a fixed set of values are typed `Literal[...]`; `choices(name)` reads them back, so the command line
offers exactly what `validate()` accepts. `validate()` holds every check of a config that needs no data.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

import yaml

from ferkit.errors import FerkitError
from ferkit.labels import USAGES


@dataclass
class TrainConfig:
    model: str = "vgg"               # the shipped models' family; its arguments default to the registry's (width 32),
    model_kwargs: dict = field(default_factory=dict)  # configs/default.yaml holds the shipped `default`'s shape
    data: str = ""
    labels: Literal["fer2013", "ferplus"] = "fer2013"  # fer2013 (7 classes) or ferplus (8, majority vote)
    soft_labels: bool = False        # ferplus: train on vote distributions instead of the majority label
    ferplus_votes: float = 0.0       # fer2013: target = (1 - w) · label + w · the face's FER+ vote distribution
                                     # over the seven shared emotions (fer2013new.csv beside the csv; training
                                     # split only, before distillation; faces without such votes keep their label)
    clean: bool = False              # drop blank images and Training rows duplicated in the test splits
    skip_bad_rows: bool = False      # skip (and count) malformed csv rows instead of stopping at the first
    train_split: str = "Training"
    val_split: str = "PublicTest"    # checkpoints are selected here; PrivateTest is never looked at
    subset: int = 0                  # train on the first N Training rows only (quick runs, tests)
    val_subset: int = 0
    epochs: int = 50
    time_budget_min: float = 0.0     # > 0: stop after this many minutes (training and validation), whatever the
                                     # epoch; cosine then decays over the budget's time instead of its steps
    progressive_size: int = 0        # > 0: progressive resizing; train on faces downscaled to this side first
                                     # (32 costs 0.44 of a 48×48 step), then at full size; validation is always
                                     # at full size. Needs a net that takes other sizes (vgg, resnet, mini_xception)
    progressive_until: float = 0.5   # the fraction of the run (of the time budget when one is set, else of the
                                     # epochs) trained at progressive_size
    validate_from: float = 0.0       # score the validation split only from this fraction of the run on (of the time
                                     # budget, else of the epochs): under a decaying rate an early epoch is not the
                                     # best, and its scoring takes time a budget could train with
    validate_raw: bool = True        # with ema or swa, also score the raw weights each epoch (history's val_acc_raw)
    batch_size: int = 128
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"   # sgd: with Nesterov momentum
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "onecycle", "plateau", "none"] = "cosine"
    warmup_epochs: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 1e-6
    label_smoothing: float = 0.0
    class_weights: Literal["none", "balanced", "sqrt"] = "none"  # inverse frequency, or its square root
    early_stopping: int = 0          # patience in epochs on PublicTest accuracy; 0 = off
    augment: dict = field(default_factory=dict)
    init_from: str = ""              # start from this checkpoint's weights (tensors of the same shape; a new head
                                     # for another label set is left fresh): fine-tuning, warm restarts, stages
    teachers: list = field(default_factory=list)  # checkpoints whose mean prediction is distilled into this model
    distill_weight: float = 0.5      # target = (1 - w) · label + w · teachers' softmax(logits / T)
    distill_temperature: float = 1.0
    distill_mode: Literal["offline", "online"] = "offline"  # offline: teachers score each clean training image
                                     # once (flip-averaged), cheap on a CPU; online: teachers see every augmented batch
    ema: float = 0.0                 # > 0: keep an exponential moving average of the weights with this decay per
                                     # step (0.999 ≈ the last 1000 steps) and validate, select and save it instead
    swa: float = 0.0                 # > 0: stochastic weight averaging over the last `swa` of the run (1 = all of it):
                                     # the equal-weight mean of the weights at each epoch's end there is validated,
                                     # selected and saved instead; pair it with a flat rate (schedule none, or a
                                     # warm restart from init_from at a moderate lr). Not with ema
    swa_bn: Literal["recompute", "average"] = "recompute"  # the average's BN statistics: recompute (a pass over a
                                     # fixed sample of 8,192 clean Training faces after each snapshot) or average
                                     # (the snapshots' mean, free)
    seed: int = 0
    threads: int = 0                 # torch threads; 0 = torch's default
    channels_last: bool = False
    sync_bn: bool = False            # under torchrun: batch-norm statistics over the global batch of all processes
                                     # (train/distributed.py); alone, a run is unchanged
    bf16: bool = False               # bf16 autocast (fast on CPUs with AVX-512 BF16 / AMX, and on GPUs)
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    tta: list = field(default_factory=list)   # test-time augmentation used when validating:
                                              # [], ["flip"], ["flip", "shift"]
    tensorboard: bool = False
    progress: bool = True

    # ------------------------------------------------------------------------------------------ building

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise FerkitError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise FerkitError(f"{path}: cannot read config ({exc})") from None
        if not isinstance(values, dict):
            raise FerkitError(f"{path}: a config file must hold a mapping of keys to values")
        return cls.from_dict(values)

    @classmethod
    def choices(cls, name: str) -> tuple:
        """The values a Literal-typed field accepts, for the command line's choices."""
        return typing.get_args(typing.get_type_hints(cls)[name])

    def to_dict(self) -> dict:
        return asdict(self)

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Apply `key=value` strings (value parsed as YAML); dotted keys reach into dicts: augment.mixup=0.2."""
        values = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise FerkitError(f"--set expects key=value, got {item!r}")
            key, raw = item.split("=", 1)
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                raise FerkitError(f"--set {key}: {raw!r} is not a valid value") from None
            target, parts = values, key.split(".")
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise FerkitError(f"--set {key}: {part} is not a mapping")
            target[parts[-1]] = value
        return TrainConfig.from_dict(values)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # ------------------------------------------------------------------------------------------ checking

    def validate(self) -> "TrainConfig":
        """Every check that needs no data: types, choices, ranges, pairings, the model and its arguments.
        Raises FerkitError naming the first problem; returns the config."""
        try:
            self._check_types()
            self._check_values()
            self._check_model()
        except (KeyError, TypeError, ValueError) as exc:
            raise FerkitError(str(exc).strip('"')) from None
        return self

    def _check_types(self) -> None:
        for f, kind in typing.get_type_hints(type(self)).items():
            value = getattr(self, f)
            options = typing.get_args(kind) if typing.get_origin(kind) is Literal else None
            if options is not None:
                if value not in options:
                    raise ValueError(f"unknown {f} {value!r}; expected {', '.join(map(str, options))}")
            elif kind is float and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise ValueError(f"{f} must be a number, got {value!r}")
            elif kind in (int, bool, str, dict, list) and not isinstance(value, kind):
                raise ValueError(f"{f} must be {kind.__name__}, got {value!r}")
            elif kind is int and isinstance(value, bool):
                raise ValueError(f"{f} must be an int, got {value!r}")

    def _check_values(self) -> None:
        from ferkit.classifier.tta import check_tta
        from ferkit.data.augment import AugmentConfig

        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")
        if min(self.lr, self.weight_decay, self.min_lr) < 0 or not 0 <= self.momentum < 1:
            raise ValueError("lr, weight_decay and min_lr cannot be negative, and momentum must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.distill_weight <= 1 or self.distill_temperature <= 0:
            raise ValueError("label_smoothing must be in [0, 1), distill_weight in [0, 1], distill_temperature > 0")
        if not 0 <= self.ferplus_votes <= 1 or (self.ferplus_votes and self.labels != "fer2013"):
            raise ValueError("ferplus_votes must be in [0, 1] and needs labels fer2013 (FER+ labels: soft_labels)")
        if min(self.subset, self.val_subset, self.early_stopping, self.threads, self.warmup_epochs) < 0:
            raise ValueError("subset, val_subset, early_stopping, threads and warmup_epochs cannot be negative")
        for split in (self.train_split, self.val_split):
            if split not in USAGES:
                raise ValueError(f"unknown split {split!r}; expected {', '.join(USAGES)}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"unknown device {self.device!r}; expected auto, cpu, cuda or cuda:N")
        check_tta(self.tta)
        AugmentConfig.from_dict(self.augment)
        if not 0.0 <= self.validate_from < 1.0:
            raise ValueError(f"validate_from must be a fraction of the run in [0, 1), got {self.validate_from}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be a decay in [0, 1) (0 = off), got {self.ema}")
        if not 0.0 <= self.swa <= 1.0:
            raise ValueError(f"swa must be the averaged fraction of the run, in [0, 1] (0 = off), got {self.swa}")
        if self.swa and self.ema:
            raise ValueError("swa and ema are two ways to average the weights: choose one")
        if self.time_budget_min < 0 or (self.time_budget_min and self.schedule == "onecycle"):
            raise ValueError("time_budget_min must be >= 0, and onecycle needs a fixed number of steps "
                             "(use cosine, plateau or none with a time budget)")

    def _check_model(self) -> None:
        """The model builds with these arguments, and takes the progressive side if one is set (no data needed)."""
        from ferkit.models import create_model
        from ferkit.train.progressive import check_progressive

        try:
            model = create_model(self.model, **self.model_kwargs)
        except (TypeError, ValueError, RuntimeError) as exc:  # a wrong argument's own error may not name it
            raise ValueError(f"{self.model} cannot be built with model_kwargs {self.model_kwargs} ({exc})") from None
        if self.progressive_size:
            check_progressive(model, self)
