"""Averages of a model's weights over training: an exponential moving average per step (Polyak averaging), and an
equal-weight average of end-of-epoch snapshots (stochastic weight averaging).

With `ema` > 0 the run validates, selects and saves as best.pt the averaged weights instead of the last step's:
the mean of the last few hundred steps sits nearer the middle of the basin that SGD bounces around, which
tends to help most while the learning rate is still high (short runs, time budgets, warm restarts).
"""

from __future__ import annotations

import copy

import torch


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
