"""Training configuration: plain values, loadable from YAML, overridable from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from ferkit.errors import FerkitError


@dataclass
class TrainConfig:
    model: str = "mini_xception"
    model_kwargs: dict = field(default_factory=dict)
    data: str = ""
    labels: str = "fer2013"          # fer2013 (7 classes) or ferplus (8, majority vote)
    soft_labels: bool = False        # ferplus: train on vote distributions instead of the majority label
    clean: bool = False              # drop blank images and Training rows duplicated in the test splits
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
    validate_raw: bool = True        # with ema, also score the raw weights each epoch (history's val_acc_raw)
    batch_size: int = 128
    optimizer: str = "sgd"           # sgd (Nesterov momentum) | adam | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"         # cosine | onecycle | plateau | none
    warmup_epochs: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 1e-6
    label_smoothing: float = 0.0
    class_weights: str = "none"      # none | balanced | sqrt (inverse frequency, or its square root)
    early_stopping: int = 0          # patience in epochs on PublicTest accuracy; 0 = off
    augment: dict = field(default_factory=dict)
    init_from: str = ""              # start from this checkpoint's weights (tensors of the same shape; a new head
                                     # for another label set is left fresh): fine-tuning, warm restarts
    teachers: list = field(default_factory=list)  # checkpoints whose mean prediction is distilled into this model
    distill_weight: float = 0.5      # target = (1 - w) · label + w · teachers' softmax(logits / T)
    distill_temperature: float = 1.0
    distill_mode: str = "offline"    # offline: teachers score each clean training image once (flip-averaged), cheap
                                     # on a CPU; online: teachers see every augmented batch the student sees
    ema: float = 0.0                 # > 0: keep an exponential moving average of the weights with this decay per
                                     # step (0.999 ≈ the last 1000 steps) and validate, select and save it instead
    swa: float = 0.0                 # > 0: stochastic weight averaging over the last `swa` of the run (1 = all of it):
                                     # the equal-weight mean of the weights at each epoch's end there is validated,
                                     # selected and saved instead; pair it with a flat rate (schedule none, or a
                                     # warm restart from init_from at a moderate lr). Not with ema
    swa_bn: str = "recompute"        # the average's BN statistics: recompute (a pass over a fixed sample of 8,192
                                     # clean Training faces after each snapshot) or average (the snapshots' mean, free)
    seed: int = 0
    threads: int = 0                 # torch threads; 0 = torch's default
    channels_last: bool = False
    bf16: bool = False               # bf16 autocast (fast on CPUs with AVX-512 BF16 / AMX, and on GPUs)
    device: str = "auto"             # auto | cpu | cuda
    tta: list = field(default_factory=list)   # test-time augmentation used when validating:
                                              # [], ["flip"], ["flip", "shift"]
    tensorboard: bool = False
    progress: bool = True

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

    def to_dict(self) -> dict:
        return asdict(self)

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Apply `key=value` strings (value parsed as YAML); dotted keys reach into dicts: augment.mixup=0.2."""
        values = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise FerkitError(f"--set expects key=value, got {item!r}")
            key, raw = item.split("=", 1)
            value = yaml.safe_load(raw)
            target, parts = values, key.split(".")
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise FerkitError(f"--set {key}: {part} is not a mapping")
            target[parts[-1]] = value
        return TrainConfig.from_dict(values)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
