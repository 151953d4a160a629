"""Batched, seeded augmentation on torch tensors in [0, 1] (N×1×H×W): no per-image Python loop.

Random draws always come from a CPU generator (so a run is the same on any device); the warps and masks are
applied on whatever device the images are on.

The geometric part follows Keras' ImageDataGenerator, which the seed reports used (rotation, width/height
shift, zoom, shear, horizontal flip), done as one affine warp per batch; then random crop, brightness /
contrast, random erasing; mixup / cutmix act on images and soft targets together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    rotation: float = 10.0       # degrees, ±
    shift: float = 0.1           # fraction of width / height, ±
    zoom: float = 0.1            # scale in [1 - zoom, 1 + zoom], per axis as in Keras
    shear: float = 0.1           # shear angle in radians, ±
    hflip: bool = True
    fill: str = "border"         # what the warp fills in: border (Keras 'nearest'), zeros, reflection
    crop_pad: int = 0            # random crop after padding this many pixels on each side
    brightness: float = 0.0      # additive, ± (in [0, 1] units)
    contrast: float = 0.0        # multiplicative around the image mean, 1 ± contrast
    erasing: float = 0.0         # probability of erasing one random rectangle
    erasing_area: tuple = (0.02, 0.2)
    mixup: float = 0.0           # Beta(alpha, alpha) for mixup; 0 = off
    cutmix: float = 0.0          # Beta(alpha, alpha) for cutmix; 0 = off
    mix_prob: float = 1.0        # share of batches that get mixup or cutmix

    @classmethod
    def from_dict(cls, values: dict | None) -> "AugmentConfig":
        values = dict(values or {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown augmentation option(s): {', '.join(sorted(unknown))}")
        if "erasing_area" in values:
            values["erasing_area"] = tuple(values["erasing_area"])
        return cls(**values)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["erasing_area"] = list(self.erasing_area)
        return values


NO_AUGMENT = AugmentConfig(rotation=0, shift=0, zoom=0, shear=0, hflip=False)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


class Augmenter:
    def __init__(self, config: AugmentConfig):
        self.config = config

    def __call__(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """images: float N×C×H×W in [0, 1] → augmented copy, same shape, deterministic for a generator state."""
        cfg = self.config
        out = self._affine(images, gen)
        if cfg.crop_pad > 0:
            out = self._random_crop(out, cfg.crop_pad, gen)
        if cfg.brightness > 0 or cfg.contrast > 0:
            out = self._photometric(out, gen)
        if cfg.erasing > 0:
            out = self._erase(out, gen)
        return out

    def _affine(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cfg = self.config
        n = x.shape[0]
        if not (cfg.rotation or cfg.shift or cfg.zoom or cfg.shear or cfg.hflip):
            return x
        angle = _uniform(n, -cfg.rotation, cfg.rotation, gen) * math.pi / 180
        shear = _uniform(n, -cfg.shear, cfg.shear, gen)
        zx = _uniform(n, 1 - cfg.zoom, 1 + cfg.zoom, gen)
        zy = _uniform(n, 1 - cfg.zoom, 1 + cfg.zoom, gen)
        tx = _uniform(n, -cfg.shift, cfg.shift, gen) * 2  # normalised coordinates span 2
        ty = _uniform(n, -cfg.shift, cfg.shift, gen) * 2
        flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if cfg.hflip else torch.ones(n)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Sampling matrix = rotation · shear · zoom · flip, acting on output coordinates.
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        shr = torch.stack([torch.stack([torch.ones(n), -torch.sin(shear)], -1),
                           torch.stack([torch.zeros(n), torch.cos(shear)], -1)], -2)
        scale = torch.diag_embed(torch.stack([zx * flip, zy], -1))
        theta = torch.cat([rot @ shr @ scale, torch.stack([tx, ty], -1).unsqueeze(-1)], -1)
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=cfg.fill, align_corners=False)

    @staticmethod
    def _random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, padded.shape[3])
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
        return padded.gather(2, rows).gather(3, cols)

    def _photometric(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cfg = self.config
        n = x.shape[0]
        contrast = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, gen).view(n, 1, 1, 1).to(x.device, x.dtype)
        brightness = _uniform(n, -cfg.brightness, cfg.brightness, gen).view(n, 1, 1, 1).to(x.device, x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * contrast + mean + brightness).clamp(0, 1)

    def _erase(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cfg = self.config
        n, c, h, w = x.shape
        low, high = cfg.erasing_area
        area = _uniform(n, low, high, gen) * h * w
        log_ratio = _uniform(n, math.log(0.3), math.log(1 / 0.3), gen)
        eh = torch.sqrt(area * torch.exp(log_ratio)).round().clamp(1, h).long()
        ew = torch.sqrt(area / torch.exp(log_ratio)).round().clamp(1, w).long()
        top = (torch.rand(n, generator=gen) * (h - eh + 1)).long()
        left = (torch.rand(n, generator=gen) * (w - ew + 1)).long()
        apply = torch.rand(n, generator=gen) < cfg.erasing
        ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        inside = ((ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1))
                  & (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1)) & apply.view(n, 1, 1))
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        return torch.where(inside.unsqueeze(1).to(x.device), noise, x)


def mix_batch(images: torch.Tensor, targets: torch.Tensor, config: AugmentConfig,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or cutmix (chosen at random when both are on) on images and soft targets (N×classes)."""
    modes = [m for m, alpha in (("mixup", config.mixup), ("cutmix", config.cutmix)) if alpha > 0]
    if not modes or torch.rand(1, generator=gen).item() >= config.mix_prob:
        return images, targets
    mode = modes[int(torch.randint(len(modes), (1,), generator=gen))]
    alpha = config.mixup if mode == "mixup" else config.cutmix
    lam = _beta(alpha, gen)
    perm = torch.randperm(images.shape[0], generator=gen).to(images.device)
    if mode == "mixup":
        mixed = images * lam + images[perm] * (1 - lam)
    else:
        n, c, h, w = images.shape
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        mixed = images.clone()
        mixed[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the share of pixels actually kept
    return mixed, targets * lam + targets[perm] * (1 - lam)


def _beta(alpha: float, gen: torch.Generator) -> float:
    """Beta(alpha, alpha) from the seeded generator (torch.distributions cannot take one)."""
    # Two gamma draws by Marsaglia–Tsang would need rejection loops; the inverse-CDF on a fine grid is enough here.
    u = torch.rand(1, generator=gen, dtype=torch.float64)
    grid = torch.linspace(1e-4, 1 - 1e-4, 4001, dtype=torch.float64)
    density = (grid * (1 - grid)) ** (alpha - 1)
    cdf = torch.cumsum(density, 0)
    cdf = cdf / cdf[-1]
    return float(grid[torch.searchsorted(cdf, u).clamp(max=len(grid) - 1)])
