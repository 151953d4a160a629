"""Weight averaging ("model soups"): nets of one architecture that share a basin, such as warm restarts of one
checkpoint, averaged into one net that costs what one member costs at run time."""

from __future__ import annotations

import numpy as np
import torch

from ferkit.errors import FerkitError
from ferkit.vision.crop import normalise


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
