"""The optimiser, the learning-rate schedule, and the run's clock (epochs or a time budget) they follow."""

from __future__ import annotations

import math
import time

import torch


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    # No weight decay on biases and BN parameters (standard practice; it only hurts them).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.AdamW(groups, lr=config.lr)  # the config's Literal admits nothing else


class RunClock:
    """Where a run stands. Seconds spent (training and validation, summed across resumes) and, with a time budget,
    the share of it used: the cosine schedule, progressive resizing, validate_from and swa all read the run's
    progress here, on the budget's clock when there is one, else counted in epochs."""

    def __init__(self, config, spent_s: float = 0.0):
        self.epochs = config.epochs
        self.budget_s = config.time_budget_min * 60
        self.spent = spent_s               # seconds spent before the current epoch
        self.epoch_started = time.time()

    def begin_epoch(self) -> None:
        self.epoch_started = time.time()

    def end_epoch(self) -> float:
        """Adds the epoch's seconds to the spent time and returns them."""
        seconds = time.time() - self.epoch_started
        self.spent += seconds
        return seconds

    def budget_used(self) -> float:
        return (self.spent + time.time() - self.epoch_started) / self.budget_s

    def deadline(self) -> float | None:
        """The time.time() at which the budget runs out, None without a budget."""
        return self.epoch_started + self.budget_s - self.spent if self.budget_s else None

    def progress(self, epoch: int, step: int = 0, steps: int = 1) -> float:
        """The share of the run done at this step of this epoch (of the budget, else of the epochs)."""
        return self.budget_used() if self.budget_s else (epoch + step / steps) / self.epochs

    def out_of_time(self) -> bool:
        return bool(self.budget_s) and self.spent >= self.budget_s


def build_scheduler(optimizer, config, steps_per_epoch: int, clock: RunClock):
    """Returns (scheduler, per_batch): per-batch schedulers step every batch, plateau once per epoch.

    With a time budget, cosine follows the clock (warm-up still counts steps), so the rate reaches its floor
    when the time runs out.
    """
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    floor = min(1.0, config.min_lr / config.lr) if config.lr > 0 else 0.0
    if config.schedule == "cosine":
        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if clock.budget_s:
                progress = min(1.0, clock.budget_used())
            else:
                progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
    if config.schedule == "onecycle":  # never with a time budget: TrainConfig.validate refuses that pairing
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total,
                                                   pct_start=max(0.05, min(0.5, warmup / max(total, 1) or 0.3))), True
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.plateau_factor,
                                                          patience=config.plateau_patience,
                                                          min_lr=config.min_lr), False
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0), True  # none: a flat rate


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def run_eta(images_left: float, rate: float, deadline: float | None = None) -> float:
    """Seconds until the run ends: its remaining images at `rate`, or the time budget's deadline if that is sooner."""
    eta = images_left / rate
    return eta if deadline is None else max(0.0, min(eta, deadline - time.time()))
