"""Where a run computes: the device, torch's threads, cuDNN, and whether bf16 autocast is native on this CPU."""

from __future__ import annotations

from pathlib import Path

import torch

from ferkit.errors import FerkitError


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


def set_up(config, log) -> torch.device:
    """Threads, device and cuDNN for a run, with a warning when bf16 would be emulated."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 48×48 shapes: let cuDNN pick its fastest kernels
    if config.bf16 and device.type == "cpu" and cpu_has_native_bf16() is False:
        log("warning: bf16=true on a CPU without AVX-512 BF16 or AMX: autocast is emulated there and "
            "trains many times slower than fp32 (python bench/train_throughput.py --bf16 measures it)")
    return device
