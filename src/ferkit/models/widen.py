"""Net2Wider for the `vgg` family: a trained net made wider without changing what it computes.

Each layer's new channels copy randomly chosen old ones; the next layer divides the weights it reads from a copied
channel by the number of copies, so its input sums are unchanged (Chen, Goodfellow & Shlens 2016, "Net2Net").
A wider student then starts at its teacher's accuracy instead of from scratch. Copies get a little noise on their
incoming weights; without it a channel and its copy receive the same gradient and never grow apart.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ferkit.errors import FerkitError
from ferkit.models.layers import SqueezeExcite


def _channel_map(old: int, new: int, generator: torch.Generator) -> torch.Tensor:
    """Index of the old channel each new channel copies: the old ones in place, then random repeats."""
    extra = torch.randint(0, old, (new - old,), generator=generator)
    return torch.cat([torch.arange(old), extra])


@torch.no_grad()
def widen_vgg(old: nn.Sequential, new: nn.Sequential, noise: float = 0.01, seed: int = 0) -> nn.Sequential:
    """Fill `new` (a wider `vgg`: same stages and head, more channels per conv) from the trained `old`.
    `noise` is the standard deviation of the noise added to the copies' incoming weights, relative to each
    layer's weight spread; 0 keeps the function exactly."""
    old_mods, new_mods = list(old), list(new)
    if len(old_mods) != len(new_mods) or any(type(a) is not type(b) for a, b in zip(old_mods, new_mods)):
        raise FerkitError("widen: the two nets must have the same layers (a vgg and a wider vgg of the same depth)")
    if any(isinstance(m, SqueezeExcite) for m in old.modules()):
        raise FerkitError("widen: nets with squeeze-excite blocks are not supported")
    generator = torch.Generator().manual_seed(seed)
    mapping = counts = None  # for the current layer's input: the old channel each new one copies, copies per old
    for o, n in zip(_leaves(old_mods), _leaves(new_mods)):
        if isinstance(o, nn.Conv2d):
            if n.out_channels < o.out_channels:
                raise FerkitError(f"widen: the new net is narrower ({n.out_channels} channels, not {o.out_channels})")
            weight = o.weight
            if mapping is not None:  # read copied input channels at a share of their weight
                weight = weight[:, mapping] / counts[mapping].view(1, -1, 1, 1)
            out_map = _channel_map(o.out_channels, n.out_channels, generator)
            weight = weight[out_map].clone()
            if noise and n.out_channels > o.out_channels:
                copies = weight[o.out_channels:]
                copies += torch.randn(copies.shape, generator=generator) * noise * o.weight.std()
            n.weight.copy_(weight)
            if o.bias is not None:
                n.bias.copy_(o.bias[out_map])
            mapping, counts = out_map, torch.bincount(out_map, minlength=o.out_channels).to(weight.dtype)
        elif isinstance(o, nn.BatchNorm2d):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(n, name).copy_(getattr(o, name)[mapping])
            n.num_batches_tracked.copy_(o.num_batches_tracked)
        elif isinstance(o, nn.Linear) and mapping is not None:  # the first head layer reads C×H×W flattened
            spatial = o.in_features // counts.numel()
            index = (mapping[:, None] * spatial + torch.arange(spatial)).reshape(-1)
            scale = counts[mapping].repeat_interleave(spatial)
            n.weight.copy_(o.weight[:, index] / scale)
            n.bias.copy_(o.bias)
            mapping = counts = None  # the hidden layer keeps its size
        elif isinstance(o, (nn.Linear, nn.BatchNorm1d)):
            n.load_state_dict(o.state_dict())
        elif any(True for _ in o.parameters()):
            raise FerkitError(f"widen: cannot widen a {type(o).__name__} layer (only plain vgg nets)")
    return new


def _leaves(modules: list) -> list:
    """The layers in order, with the conv-BN-ReLU blocks opened up."""
    out = []
    for module in modules:
        children = list(module.children())
        out.extend(_leaves(children) if children else [module])
    return out
