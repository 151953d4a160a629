"""Progressive resizing: the first `progressive_until` of a run trains on faces shrunk to `progressive_size`
(32×32 costs 0.44 of a 48×48 step), the rest at full size; validation is always at full size."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ferkit.vision.crop import PREPROCESS


def check_progressive(model: torch.nn.Module, config) -> None:
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


class ProgressiveResizing:
    """Shrinks a step's batch while the run is in its low-resolution part (`clock`: ferkit.train.schedule.RunClock)."""

    def __init__(self, config, clock):
        self.side, self.until = config.progressive_size, config.progressive_until
        self.channels_last = config.channels_last
        self.clock = clock

    def __call__(self, x: torch.Tensor, epoch: int, step: int, steps: int) -> tuple[torch.Tensor, bool]:
        """(the batch to train on, whether it was shrunk)."""
        if not self.side or self.clock.progress(epoch, step, steps) >= self.until:
            return x, False
        x = downscale(x, self.side)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, True
