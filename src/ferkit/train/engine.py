"""The training loop: short enough to read in one sitting.

Each epoch draws its shuffling, augmentation and dropout randomness from generators seeded by (seed, epoch),
and a checkpoint is written after every epoch, so a killed run resumed with --resume ends with exactly the
weights an uninterrupted run would have.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from ferkit.data import FaceSet, load_dataset
from ferkit.data.augment import AugmentConfig, Augmenter, mix_batch
from ferkit.errors import FerkitError
from ferkit.evaluate.metrics import classification_report
from ferkit.models import count_parameters, create_model
from ferkit.models.soup import recompute_batchnorm
from ferkit.runtime.torch_infer import predict_proba
from ferkit.runtime.tta import check_tta
from ferkit.train.callbacks import TensorBoardLogger, plot_curves, write_history
from ferkit.train.checkpoint import load_checkpoint, save_checkpoint
from ferkit.train.config import TrainConfig
from ferkit.train.ema import EpochAverage, WeightAverage
from ferkit.vision.crop import PREPROCESS, normalise_unit


RUNTIME_KEYS = ("threads", "device", "progress", "tensorboard")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FerkitError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); None where it cannot be told (no
    /proc/cpuinfo). Without it, bf16 autocast is emulated: 0.06x the fp32 speed measured on an AVX2 EPYC."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def split_data(faces: FaceSet, config: TrainConfig) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets; a folder without split folders gets a seeded 10% validation split."""
    if faces.usage is not None:
        train, val = faces.split(config.train_split), faces.split(config.val_split)
    else:
        order = np.random.default_rng(config.seed).permutation(len(faces))
        cut = max(1, len(faces) // 10)
        train, val = faces.subset(np.sort(order[cut:])), faces.subset(np.sort(order[:cut]))
    if config.subset:
        train = train.subset(np.arange(min(config.subset, len(train))))
    if config.val_subset:
        val = val.subset(np.arange(min(config.val_subset, len(val))))
    if len(train) == 0 or len(val) == 0:
        raise FerkitError(f"empty split: {len(train)} training and {len(val)} validation images")
    return train, val


def class_weight_vector(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount(labels[labels >= 0], minlength=num_classes).astype(np.float64)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    elif mode != "balanced":
        raise FerkitError(f"unknown class_weights {mode!r}; expected none, balanced or sqrt")
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and BN parameters (standard practice; it only hurts them).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    raise FerkitError(f"unknown optimizer {config.optimizer!r}; expected sgd, adam or adamw")


def build_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int, budget_used=None):
    """Returns (scheduler, steps_per_batch): per-batch schedulers step every batch, plateau once per epoch.

    With a time budget, `budget_used()` gives the fraction of it spent so far, and cosine follows that clock
    (warm-up still counts steps), so the rate reaches its floor when the time runs out.
    """
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    floor = min(1.0, config.min_lr / config.lr) if config.lr > 0 else 0.0
    if config.schedule == "cosine":
        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if budget_used is not None:
                progress = min(1.0, budget_used())
            else:
                progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
    if config.schedule == "onecycle":  # never with a time budget: Trainer refuses that pairing up front
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total,
                                                   pct_start=max(0.05, min(0.5, warmup / max(total, 1) or 0.3))), True
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.plateau_factor,
                                                          patience=config.plateau_patience,
                                                          min_lr=config.min_lr), False
    if config.schedule == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0), True
    raise FerkitError(f"unknown schedule {config.schedule!r}; expected cosine, onecycle, plateau or none")


def soft_targets(faces: FaceSet, use_votes: bool) -> torch.Tensor:
    if use_votes:
        if faces.votes is None:
            raise FerkitError("soft_labels needs vote distributions (labels: ferplus)")
        return torch.from_numpy(faces.votes).float()
    return F.one_hot(torch.from_numpy(faces.labels), faces.num_classes).float()


def init_from_checkpoint(model: torch.nn.Module, path: str) -> str:
    """Copy every tensor whose name and shape match from a checkpoint (or run folder, or shipped model name)."""
    from ferkit.runtime.models import resolve_checkpoint

    source = resolve_checkpoint(path)
    weights = load_checkpoint(source)["model_state"]
    own = model.state_dict()
    taken = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()
             if k in own and own[k].shape == v.shape}
    if not taken:
        raise FerkitError(f"init_from {path}: no tensor matches this model ({type(model).__name__})")
    model.load_state_dict(taken, strict=False)
    fresh = [k for k in own if k not in taken]
    return f"initialised from {source}: {len(taken)} tensors" + (f", fresh: {', '.join(fresh)}" if fresh else "")


def load_teachers(paths: list, num_classes: int, device: torch.device, channels_last: bool) -> list:
    """Frozen (model, calibrated temperature) pairs for distillation, loaded as `ferkit evaluate` loads a model;
    their label count must match the student's."""
    from ferkit.runtime.models import TorchClassifier

    teachers = []
    for path in paths or []:
        teacher = TorchClassifier.load(path)
        if len(teacher.labels) != num_classes:
            raise FerkitError(f"teacher {path} predicts {len(teacher.labels)} classes, not {num_classes}")
        model = teacher.model.to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        teachers.append((model.eval().requires_grad_(False), teacher.temperature))
    return teachers


@torch.no_grad()
def teacher_probs(teachers: list, x: torch.Tensor, temperature: float, bf16: bool) -> torch.Tensor:
    """The teachers' mean softmax on the same augmented batch the student sees (each at its calibrated
    temperature times the distillation temperature)."""
    total = 0
    for model, calibrated in teachers:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        total = total + torch.softmax(logits.float() / (calibrated * temperature), dim=1)
    return total / len(teachers)


def _format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _run_eta(images_left: float, rate: float, deadline: float | None = None) -> float:
    """Seconds until the run ends: its remaining images at `rate`, or the time budget's deadline if that is sooner."""
    eta = images_left / rate
    return eta if deadline is None else max(0.0, min(eta, deadline - time.time()))


def check_progressive(model: torch.nn.Module, config: TrainConfig) -> None:
    """Refuses progressive resizing settings that cannot work, before any data is loaded."""
    side = config.progressive_size
    if not 8 <= side < PREPROCESS["size"] or not 0.0 < config.progressive_until <= 1.0:
        raise ValueError(f"progressive_size must be a side in [8, {PREPROCESS['size']}) and progressive_until a "
                         f"fraction in (0, 1], got {side} and {config.progressive_until}")
    in_chans = config.model_kwargs.get("in_chans", 1)
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_chans, side, side))
    except RuntimeError as exc:
        raise ValueError(f"{config.model} cannot take {side}×{side} input, so it cannot train with "
                         f"progressive_size ({str(exc).splitlines()[0]}); vgg, resnet18 and mini_xception can")


def downscale(x: torch.Tensor, side: int) -> torch.Tensor:
    """A batch of faces shrunk to side×side, antialiased as a camera at that resolution would see them."""
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


def train_sides(low_res_steps: int, steps: int, side: int) -> str:
    """The input side(s) an epoch trained at: "32", "48", or "32/48" for the epoch that switches."""
    sides = ([side] if low_res_steps else []) + ([PREPROCESS["size"]] if low_res_steps < steps else [])
    return "/".join(map(str, sides))


class Trainer:
    def __init__(self, config: TrainConfig | None, out_dir: str | Path, resume: bool = False,
                 epochs: int | None = None, runtime: dict | None = None, log=print):
        """With resume, the run's own saved config is used; `epochs` may extend it, and `runtime` may change
        settings that do not change what is learned (threads, device, progress bar, TensorBoard)."""
        self.out = Path(out_dir)
        self.log = log
        self.state = None
        if resume:
            self.state = load_checkpoint(self.out / "last.pt")
            config = TrainConfig.from_dict(self.state["config"])
        if config is None:
            raise FerkitError("no training config given")
        if epochs:
            config.epochs = epochs
        for key, value in (runtime or {}).items():
            if key not in RUNTIME_KEYS:
                raise FerkitError(f"{key} cannot change when resuming (only {', '.join(RUNTIME_KEYS)})")
            if value is not None:
                setattr(config, key, value)
        self.config = config
        if not config.data:
            raise FerkitError("no data: pass --data PATH (a FER2013 csv or a folder of class folders)")
        try:
            check_tta(config.tta)
            if config.distill_mode not in ("offline", "online"):
                raise ValueError(f"unknown distill_mode {config.distill_mode!r}; expected offline or online")
            if not 0.0 <= config.validate_from < 1.0:
                raise ValueError(f"validate_from must be a fraction of the run in [0, 1), got {config.validate_from}")
            if not 0.0 <= config.ema < 1.0:
                raise ValueError(f"ema must be a decay in [0, 1) (0 = off), got {config.ema}")
            if not 0.0 <= config.swa <= 1.0:
                raise ValueError(f"swa must be the averaged fraction of the run, in [0, 1] (0 = off), got {config.swa}")
            if config.swa and config.ema:
                raise ValueError("swa and ema are two ways to average the weights: choose one")
            if config.swa_bn not in ("recompute", "average"):
                raise ValueError(f"unknown swa_bn {config.swa_bn!r}; expected recompute or average")
            if config.time_budget_min < 0 or (config.time_budget_min and config.schedule == "onecycle"):
                raise ValueError("time_budget_min must be >= 0, and onecycle needs a fixed number of steps "
                                 "(use cosine, plateau or none with a time budget)")
            self.augment_config = AugmentConfig.from_dict(config.augment)
            model = create_model(config.model, **config.model_kwargs)  # fail now, not after loading the data
            if config.progressive_size:
                check_progressive(model, config)
        except (KeyError, TypeError, ValueError) as exc:
            raise FerkitError(str(exc).strip('"')) from None

    def run(self, stop_after_epochs: int | None = None) -> dict:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = resolve_device(cfg.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed 48×48 shapes: let cuDNN pick its fastest kernels
        if cfg.bf16 and device.type == "cpu" and cpu_has_native_bf16() is False:
            self.log("warning: bf16=true on a CPU without AVX-512 BF16 or AMX: autocast is emulated there and "
                     "trains many times slower than fp32 (python bench/train_throughput.py --bf16 measures it)")
        faces = load_dataset(cfg.data, labels=cfg.labels, clean=cfg.clean)
        train, val = split_data(faces, cfg)
        labels = faces.label_names
        torch.manual_seed(cfg.seed)  # weight initialisation
        model = create_model(cfg.model, num_classes=len(labels), **cfg.model_kwargs)
        if cfg.init_from and self.state is None:
            self.log(init_from_checkpoint(model, cfg.init_from))
        model = model.to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        steps_per_epoch = max(1, len(train) // cfg.batch_size)  # drop the ragged last batch: BN needs >1 sample
        optimizer = build_optimizer(model, cfg)
        # A time budget: `clock` holds the seconds spent before this epoch and when the epoch began.
        budget_s = cfg.time_budget_min * 60
        clock = {"spent": 0.0, "since": time.time()}
        budget_used = (lambda: (clock["spent"] + time.time() - clock["since"]) / budget_s) if budget_s else None
        self._budget_used = budget_used
        scheduler, per_batch = build_scheduler(optimizer, cfg, steps_per_epoch, budget_used)
        average = WeightAverage(model, cfg.ema) if cfg.ema else None
        swa = EpochAverage(model) if cfg.swa else None
        # The average's BN statistics are re-estimated on a fixed sample of 8,192 clean Training faces: a seventh
        # of the cost of all 28,709 (a full pass took as long as a training epoch here).
        bn_faces = (torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))[:8192].to(device)
                    if swa is not None and cfg.swa_bn == "recompute" else None)

        history, best, stale, start_epoch, elapsed = [], -1.0, 0, 0, 0.0
        if self.state is not None:
            model.load_state_dict(self.state["model_state"])
            optimizer.load_state_dict(self.state["optimizer_state"])
            scheduler.load_state_dict(self.state["scheduler_state"])
            if average is not None:
                average.load_state_dict(self.state["ema_state"])
            if swa is not None:
                swa.load_state_dict(self.state["swa_state"])
            history, best, stale = self.state["history"], self.state["best_val_acc"], self.state["stale_epochs"]
            start_epoch, elapsed = self.state["epoch"], self.state["elapsed_s"]
            self.log(f"resuming {self.out} after epoch {start_epoch}/{cfg.epochs}")
        (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=True))

        params = count_parameters(model)
        self.log(f"{cfg.model}: {params:,} parameters | train {len(train):,} ({cfg.train_split}) | "
                 f"val {len(val):,} ({cfg.val_split}) | {device} | {cfg.epochs} epochs x {steps_per_epoch} steps")
        meta = {"arch": cfg.model, "arch_kwargs": dict(cfg.model_kwargs), "labels": list(labels),
                "preprocess": dict(PREPROCESS), "config": cfg.to_dict(), "parameters": params, "tta": list(cfg.tta)}
        # The whole training set lives on the device (83 MB at most); batches are cut and augmented there.
        images = torch.from_numpy(train.images).to(device)
        targets = soft_targets(train, cfg.soft_labels).to(device)
        teachers = load_teachers(cfg.teachers, len(labels), device, cfg.channels_last)
        if teachers and cfg.distill_mode == "offline":
            self.log(f"distilling {len(teachers)} teacher(s) offline: scoring {len(train):,} training images")
            scored = torch.stack([torch.from_numpy(predict_proba(model_, train.images, tta=["flip"], device=device,
                                                                 temperature=t * cfg.distill_temperature))
                                  for model_, t in teachers]).mean(0).to(device)
            targets = (1 - cfg.distill_weight) * targets + cfg.distill_weight * scored
            teachers = []
        weights = class_weight_vector(train.labels, len(labels), cfg.class_weights)
        augmenter = Augmenter(self.augment_config)
        board = TensorBoardLogger(self.out / "tensorboard") if cfg.tensorboard else None

        epoch = start_epoch
        for epoch in range(start_epoch, cfg.epochs):
            if budget_s and elapsed >= budget_s:
                break
            started = time.time()
            clock.update(spent=elapsed, since=started)
            deadline = started + budget_s - elapsed if budget_s else None
            train_loss, train_acc, steps_done, low_res_steps = self._train_epoch(
                model, optimizer, scheduler if per_batch else None, images, targets, train.labels, weights,
                augmenter, epoch, device, steps_per_epoch, teachers, deadline, average)
            done = self._budget_used() if budget_s else (epoch + 1) / cfg.epochs
            last_epoch = epoch + 1 == cfg.epochs or bool(budget_s and done >= 1.0)
            if swa is not None and (done > 1.0 - cfg.swa + 1e-9 or last_epoch):
                swa.update(model)
                if cfg.swa_bn == "recompute":
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                        recompute_batchnorm(swa.model, images[bn_faces], mirrors=False)
            # With ema or swa the averaged weights are the ones validated, selected and saved as best.pt.
            chosen = (swa.model if swa is not None and swa.snapshots else
                      average.model if average is not None else model)
            scored = done >= cfg.validate_from or epoch + 1 == cfg.epochs
            if scored:
                val_loss, report, raw_acc = self._validate(chosen, model if chosen is not model else None, val,
                                                           labels, device)
                if not per_batch:
                    scheduler.step(report["accuracy"])
            else:  # too early in the run to be its best: the time goes to training instead
                nan = float("nan")
                val_loss, report, raw_acc = nan, {"accuracy": nan, "macro_f1": nan}, nan
            seconds = time.time() - started
            elapsed += seconds
            row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                   "train_acc": train_acc, "val_loss": val_loss, "val_acc": report["accuracy"],
                   "val_macro_f1": report["macro_f1"], "seconds": round(seconds, 1),
                   "img_per_s": round(steps_done * cfg.batch_size / seconds, 1), "steps": steps_done}
            if (average is not None or swa is not None) and cfg.validate_raw:
                row["val_acc_raw"] = raw_acc
            if swa is not None:
                row["swa_snapshots"] = swa.snapshots
            if cfg.progressive_size:
                row["train_side"] = train_sides(low_res_steps, steps_done, cfg.progressive_size)
            history.append(row)
            improved = scored and report["accuracy"] > best
            if improved:
                best, stale = report["accuracy"], 0
                save_checkpoint(self.out / "best.pt", {
                    **meta, "model_state": chosen.state_dict(), "epoch": epoch + 1, "elapsed_s": elapsed,
                    "metrics": {"val_split": cfg.val_split, "val_acc": best, "val_macro_f1": report["macro_f1"],
                                "train_acc": train_acc}})
            elif scored:
                stale += 1
            save_checkpoint(self.out / "last.pt", {
                **meta, "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
                "best_val_acc": best, "stale_epochs": stale, "elapsed_s": elapsed,
                **({"ema_state": average.state_dict()} if average is not None else {}),
                **({"swa_state": swa.state_dict()} if swa is not None else {})})
            write_history(self.out / "history.csv", history)
            plot_curves(self.out / "curves.png", history, title=f"{cfg.model} on {Path(cfg.data).name}")
            if board:
                board.log(row)
            eta = elapsed / (epoch + 1) * (cfg.epochs - epoch - 1)
            if budget_s:
                eta = max(0.0, min(eta, budget_s - elapsed))
            if scored:
                val_note = (f"{cfg.val_split} loss {val_loss:.4f} acc {report['accuracy']:.4f} "
                            f"macro-F1 {report['macro_f1']:.4f}{' *' if improved else ''}")
                if "val_acc_raw" in row:
                    val_note += f" (raw weights {raw_acc:.4f})"
                if swa is not None and swa.snapshots:
                    val_note += f" | average of {swa.snapshots} epoch(s)"
            else:
                val_note = f"{cfg.val_split} not scored before {cfg.validate_from:g} of the run"
            if cfg.progressive_size:
                val_note += f" | trained at {row['train_side']} px"
            self.log(f"epoch {epoch + 1}/{cfg.epochs}  loss {train_loss:.4f} acc {train_acc:.4f} | {val_note} | "
                     f"{seconds:.0f}s {row['img_per_s']:.0f} img/s | ETA {_format_eta(eta)}")
            if budget_s and elapsed >= budget_s:
                self.log(f"time budget of {cfg.time_budget_min:g} min spent in epoch {epoch + 1} "
                         f"({steps_done}/{steps_per_epoch} steps)")
                break
            if cfg.early_stopping and stale >= cfg.early_stopping:
                self.log(f"early stop: no {cfg.val_split} improvement in {stale} epochs")
                break
            if stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs:
                break
        if board:
            board.close()
        return {"best_val_acc": best, "epochs_run": len(history), "elapsed_s": elapsed, "out": str(self.out),
                "parameters": params}

    def _validate(self, chosen, raw_model, val: FaceSet, labels, device) -> tuple[float, dict, float]:
        """(loss, classification report) of the chosen weights on the validation split, and the raw weights'
        accuracy (NaN unless they are a separate model and validate_raw is on)."""
        cfg = self.config

        def probabilities(model_):
            return predict_proba(model_, val.images, tta=cfg.tta, device=device, channels_last=cfg.channels_last,
                                 bf16=cfg.bf16)

        probs = probabilities(chosen)
        report = classification_report(val.labels, probs.argmax(1), labels)
        loss = float(-np.log(np.clip(probs[np.arange(len(val)), val.labels], 1e-12, None)).mean())
        raw_acc = float("nan")
        if raw_model is not None and cfg.validate_raw:  # to show what the average adds
            raw_acc = float((probabilities(raw_model).argmax(1) == val.labels).mean())
        return loss, report, raw_acc

    def _low_res(self, epoch: int, step: int, steps: int) -> bool:
        """Whether this step trains at progressive_size: the first progressive_until of the run, on the time
        budget's clock when there is one, else counted in epochs."""
        cfg = self.config
        if not cfg.progressive_size:
            return False
        budget_used = getattr(self, "_budget_used", None)
        done = budget_used() if budget_used is not None else (epoch + step / steps) / cfg.epochs
        return done < cfg.progressive_until

    def _train_epoch(self, model, optimizer, batch_scheduler, images, targets, hard_labels, weights, augmenter,
                     epoch, device, steps, teachers, deadline=None, average=None) -> tuple[float, float, int, int]:
        """One pass over the shuffled training set, or until `deadline` (time.time()) if one is given.
        Returns the mean loss, the accuracy, the steps run and how many of them were at progressive_size."""
        from tqdm import tqdm

        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        torch.manual_seed(cfg.seed * 7919 + epoch)  # dropout
        order = torch.randperm(len(images), generator=gen)
        hard = torch.from_numpy(hard_labels).to(device)
        smoothing = cfg.label_smoothing
        weights = weights.to(device) if weights is not None else None
        model.train()
        # Running sums stay on the device; reading them back (a sync) happens only every `sync_every` steps.
        total_loss, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        low_res_steps = 0
        sync_every = 1 if device.type == "cpu" else 25
        started = time.time()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                   disable=not cfg.progress, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0,
                   dynamic_ncols=True)
        for step in bar:
            index = order[step * cfg.batch_size:(step + 1) * cfg.batch_size].to(device)
            x = augmenter(images[index].unsqueeze(1).float() / 255.0, gen)
            t = targets[index]
            x, t = mix_batch(x, t, self.augment_config, gen)
            if smoothing:
                t = t * (1 - smoothing) + smoothing / t.shape[1]
            x = normalise_unit(x)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if teachers:  # teachers see the full-size face even while the student trains on a smaller one
                t = (1 - cfg.distill_weight) * t + cfg.distill_weight * teacher_probs(
                    teachers, x, cfg.distill_temperature, cfg.bf16)
            if self._low_res(epoch, step, steps):
                x = downscale(x, cfg.progressive_size)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                low_res_steps += 1
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(x)
            log_probs = F.log_softmax(logits.float(), dim=1)
            per_sample = -(t * log_probs).sum(dim=1)
            if weights is not None:
                w = (t * weights).sum(dim=1)
                loss = (per_sample * w).sum() / w.sum()
            else:
                loss = per_sample.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if batch_scheduler is not None:
                batch_scheduler.step()
            if average is not None:
                average.update(model)
            total_loss += loss.detach() * len(index)
            correct += (logits.argmax(1) == hard[index]).sum()
            seen += len(index)
            if (step + 1) % sync_every == 0 or step + 1 == steps:
                if not torch.isfinite(total_loss):
                    raise FerkitError(f"training diverged at epoch {epoch + 1}, step {step + 1}; "
                                      "lower the learning rate")
                rate = seen / (time.time() - started)
                run_eta = _run_eta(steps * cfg.batch_size - seen + (cfg.epochs - epoch - 1) * steps * cfg.batch_size,
                                   rate, deadline)
                bar.set_postfix_str(refresh=False, s=f"loss {total_loss.item() / seen:.3f} "
                                    f"acc {correct.item() / seen:.3f} {rate:.0f} img/s run ETA {_format_eta(run_eta)}")
            if deadline is not None and time.time() >= deadline:
                break
        bar.close()
        return total_loss.item() / seen, correct.item() / seen, step + 1, low_res_steps


def train(config: TrainConfig | None, out_dir: str | Path, resume: bool = False, epochs: int | None = None,
          runtime: dict | None = None, log=print, stop_after_epochs: int | None = None) -> dict:
    return Trainer(config, out_dir, resume=resume, epochs=epochs, runtime=runtime, log=log).run(
        stop_after_epochs=stop_after_epochs)
