"""Trained classifiers combined into one model: the mean of the members' probabilities, each member at its own
calibration temperature.

The output is log(mean probability), a logit vector whose softmax is that mean, so TTA, calibration, distillation
and ONNX export treat an ensemble like any single net. Ensembles are made from trained checkpoints
(`ferkit ensemble`), not trained from scratch, so they are not in the architecture registry; a checkpoint with
``members`` is rebuilt here from each member's registered architecture.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH = "ensemble"


class Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module], temperatures: list[float]):
        super().__init__()
        if not members or len(members) != len(temperatures):
            raise ValueError("an ensemble needs one temperature per member and at least one member")
        self.members = nn.ModuleList(members)
        self.temperatures = [float(t) for t in temperatures]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(member(x) / t, dim=1)
                                 for member, t in zip(self.members, self.temperatures)])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def build_ensemble(members: list[dict], num_classes: int) -> Ensemble:
    """members: the ``members`` list of an ensemble checkpoint ({"arch", "arch_kwargs", "temperature", ...} each)."""
    from ferkit.models import create_model

    nets = []
    for spec in members:
        kwargs = dict(spec.get("arch_kwargs", {}))
        kwargs.setdefault("num_classes", num_classes)
        nets.append(create_model(spec["arch"], **kwargs))
    return Ensemble(nets, [spec.get("temperature", 1.0) for spec in members])
