"""Averaging a model's weights, in one place: during a run, an exponential moving average per step (Polyak
averaging, `ema`) or the equal-weight mean of end-of-epoch snapshots (stochastic weight averaging, `swa`); after
runs, the mean of several nets of one architecture ("model soups", ferkit.train.soup).

With `ema` or `swa` the run validates, selects and saves as best.pt the averaged weights instead of the last
step's: the mean sits nearer the middle of the basin that SGD bounces around. The mean of several nets' batch-norm
statistics is not the statistics of the mean net, so `recompute_batchnorm` re-estimates them on real faces.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ferkit.errors import FerkitError
from ferkit.vision.crop import normalise


def _move_towards(average: torch.nn.Module, model: torch.nn.Module, weight: float) -> None:
    """average ← average + weight · (model − average) for floating-point tensors; integer buffers are copied."""
    live = model.state_dict()
    for name, tensor in average.state_dict().items():
        if tensor.is_floating_point():
            tensor.lerp_(live[name].detach(), weight)
        else:
            tensor.copy_(live[name])


class WeightAverage:
    """After each optimiser step: average ← decay · average + (1 − decay) · weights, for parameters and BN
    statistics alike (integer buffers, e.g. BN's batch counter, are copied)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next update uses."""
        # Early on a high decay would keep the average near the starting weights for thousands of steps;
        # (1 + n) / (10 + n) lets it follow the model at first and reach `decay` later (the TF / timm warm-up).
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        weight = 1.0 - self.current_decay()
        self.updates += 1
        _move_towards(self.model, model, weight)

    def state_dict(self) -> dict:
        return {"model_state": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model_state"])
        self.updates = int(state["updates"])


class EpochAverage:
    """Stochastic weight averaging (Izmailov et al., 2018): the equal-weight mean of the weights taken at the ends of
    epochs, for parameters and BN statistics alike (integer buffers are copied). Where EMA forgets after a few
    hundred steps, this mean spans many epochs of a run held at a moderate learning rate, and so lands nearer the
    centre of the wide, flat region SGD circles than any one snapshot."""

    def __init__(self, model: torch.nn.Module):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.snapshots = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.snapshots += 1
        _move_towards(self.model, model, 1.0 / self.snapshots)  # a running mean: the n-th snapshot weighs 1/n

    def state_dict(self) -> dict:
        return {"model_state": self.model.state_dict(), "snapshots": self.snapshots}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model_state"])
        self.snapshots = int(state["snapshots"])


def average_states(states: list[dict]) -> dict:
    """The mean of the members' floating-point tensors; integer buffers (BN's batch counter) from the first."""
    if not states:
        raise FerkitError("a soup needs at least one member")
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys or any(state[k].shape != states[0][k].shape for k in keys):
            raise FerkitError("members differ in their layers; only nets of one architecture can be averaged")
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 256,
                        mirrors: bool = True) -> None:
    """Re-estimate every BN layer's running mean and variance over uint8 48×48 `images` (and their mirrors): the
    mean of the members' statistics is not the statistics of the mean net. Runs under any autocast in effect."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a plain average over all batches, not a moving one
    model.train()
    for start in range(0, len(images), batch_size):
        x = normalise(images[start:start + batch_size])
        model(x)
        if mirrors:
            model(torch.flip(x, dims=[3]))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()


class RunAverage:
    """The averaging a run does, behind one interface for the training loop: `after_step` and `after_epoch` update
    it, `chosen(model)` is what is validated, selected and saved as best.pt."""

    name = ""

    def __init__(self, average):
        self.average = average

    def after_step(self, model: torch.nn.Module) -> None:
        pass

    def after_epoch(self, model: torch.nn.Module, done: float, last_epoch: bool) -> None:
        pass

    def chosen(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.average.model

    def note(self) -> str:
        """What the epoch's log line adds about the average."""
        return ""

    def history_fields(self) -> dict:
        """What the epoch's history.csv row adds about the average."""
        return {}

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)


class MovingAverage(RunAverage):
    """`ema`: an exponential moving average, updated after every optimiser step."""

    name = "ema"

    def after_step(self, model):
        self.average.update(model)


class SnapshotAverage(RunAverage):
    """`swa`: the mean of the weights at the ends of the epochs in the last `fraction` of the run (and always the
    last epoch's), with its BN statistics re-estimated on a fixed sample of Training faces after each snapshot
    (`bn_faces`, under the run's autocast) or, with bn_faces None, the snapshots' mean statistics."""

    name = "swa"

    def __init__(self, model, fraction: float, bn_faces: torch.Tensor | None, bf16: bool):
        super().__init__(EpochAverage(model))
        self.fraction, self.bn_faces, self.bf16 = fraction, bn_faces, bf16

    def after_epoch(self, model, done, last_epoch):
        if done > 1.0 - self.fraction + 1e-9 or last_epoch:
            self.average.update(model)
            if self.bn_faces is not None:
                with torch.autocast(self.bn_faces.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    recompute_batchnorm(self.average.model, self.bn_faces, mirrors=False)

    def chosen(self, model):
        return self.average.model if self.average.snapshots else model

    def note(self) -> str:
        return f" | average of {self.average.snapshots} epoch(s)" if self.average.snapshots else ""

    def history_fields(self) -> dict:
        return {"swa_snapshots": self.average.snapshots}


# The average's BN statistics are re-estimated on a fixed sample of 8,192 clean Training faces: a seventh of the
# cost of all 28,709 (a full pass took as long as a training epoch on a 2-core CPU).
SWA_BN_FACES = 8192


def run_average(config, model: torch.nn.Module, images: torch.Tensor) -> RunAverage | None:
    """The averaging `config` asks for (ema, swa or none), over `model`; images: the Training faces on the device."""
    if config.ema:
        return MovingAverage(WeightAverage(model, config.ema))
    if config.swa:
        bn_faces = None
        if config.swa_bn == "recompute":
            pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))[:SWA_BN_FACES]
            bn_faces = images[pick.to(images.device)]
        return SnapshotAverage(model, config.swa, bn_faces, config.bf16)
    return None
