"""The processes one training runs on: one alone, or the N that `torchrun` started (DistributedDataParallel).

The engine calls the same methods either way, so a run alone takes no extra branch:

- `share(index)`: this process's part of a global batch (the config's batch_size is the global batch, so a
  config learns the same thing whatever the number of processes, and needs no new learning rate);
- `wrap(model)`: the model the training step calls (DDP averages the gradients; alone, the model itself);
- `sum(tensor)`, `gather(array)`, `first()`: what every process must agree on (running loss and accuracy, the
  validation split's probabilities, which is sharded, and which process writes files).

Gloo on the CPU, NCCL on CUDA (one GPU per process: LOCAL_RANK). `sync_bn=true` turns batch normalisation into
`GlobalBatchNorm`, statistics over the global batch: torch's SyncBatchNorm refuses CPU tensors.
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

from ferkit.errors import FerkitError


class Processes:
    def __init__(self, world: int = 1, rank: int = 0, local_rank: int = 0):
        self.world, self.rank, self.local_rank = world, rank, local_rank
        self.backend = ""

    @property
    def is_main(self) -> bool:
        """The one process that logs, shows progress and writes the run's files."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "Processes":
        """Alone, or one of the processes torchrun started (it sets WORLD_SIZE, RANK and LOCAL_RANK)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(world, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")))

    # ------------------------------------------------------------------------------------------ set-up

    def check(self, config) -> None:
        """Refuse, before any process waits on another, what cannot run on this many processes."""
        if self.world == 1:
            return
        if config.batch_size % self.world:
            raise FerkitError(f"batch_size {config.batch_size} is the global batch and must divide among "
                              f"{self.world} processes")
        if config.time_budget_min:
            raise FerkitError("time_budget_min cannot run under torchrun: each process reads its own clock, so "
                              "their learning rates and stopping steps would drift apart; give --epochs instead")

    def device(self, device: torch.device) -> torch.device:
        """The process's own GPU under torchrun (cuda:LOCAL_RANK); the device as given alone or on the CPU."""
        if self.world == 1 or device.type != "cuda":
            return device
        if self.local_rank >= torch.cuda.device_count():
            raise FerkitError(f"process {self.local_rank} on this machine has no GPU of its own "
                              f"({torch.cuda.device_count()} visible): start at most that many per node")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def start(self, device: torch.device) -> None:
        if self.world == 1 or dist.is_initialized():
            return
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        # Generous: validation runs on every process, but rank 0 alone writes checkpoints while the others wait.
        dist.init_process_group(self.backend, timeout=timedelta(minutes=30))

    def stop(self, finished: bool = True) -> None:
        """Leaves the process group. finished: every process got here normally, so they first wait for each other
        (rank 0 writes the last files after the last collective; a process that tore gloo down meanwhile aborted
        or hung at exit now and then). After an error only this process leaves: a barrier could wait for a dead
        one."""
        if self.world > 1 and dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()

    def describe(self) -> str:
        return "" if self.world == 1 else f" x {self.world} processes ({self.backend})"

    def wrap(self, model: torch.nn.Module, device: torch.device, sync_bn: bool) -> torch.nn.Module:
        """The model a training step calls: DDP over `model` (whose parameters it shares) or `model` alone."""
        if self.world == 1:
            return model
        if sync_bn:
            use_global_batchnorm(model)
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # ------------------------------------------------------------------------------------------ each step

    def share(self, index: torch.Tensor) -> torch.Tensor:
        """This process's consecutive part of a global batch of indices."""
        if self.world == 1:
            return index
        part = len(index) // self.world
        return index[self.rank * part:(self.rank + 1) * part]

    def generator(self, shared: torch.Generator, seed: int) -> torch.Generator:
        """The augmentation stream of this process: rank 0 (and a run alone) goes on with the shared generator
        (the one the permutation was drawn from); the others draw their own, or every rank would crop and flip
        its faces alike."""
        if self.rank == 0:
            return shared
        return torch.Generator().manual_seed(seed * 1_000_003 + 7_777 * self.rank)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over the processes (a copy; the input is left alone)."""
        if self.world == 1:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def rows(self, count: int) -> slice:
        """Which rows of a `count`-row split this process scores: every world-th, from its rank."""
        return slice(self.rank, count, self.world)

    def gather(self, part: np.ndarray, count: int) -> np.ndarray:
        """The whole split's rows from every process's `rows(count)` part."""
        if self.world == 1:
            return part
        parts = [None] * self.world
        dist.all_gather_object(parts, part)
        whole = np.empty((count,) + part.shape[1:], dtype=part.dtype)
        for rank, piece in enumerate(parts):
            whole[rank::self.world] = piece
        return whole

    def first(self, work):
        """Run `work()` on rank 0 before the others (which then run it too): the first reads the csv and writes
        the cache, the others read the cache instead of parsing the file at the same time."""
        if self.world > 1 and not self.is_main:
            dist.barrier()
        result = work()
        if self.world > 1 and self.is_main:
            dist.barrier()
        return result


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all processes: the per-channel sum, sum of squares and count
    are summed across processes by an all-reduce that autograd differentiates (its backward sums the
    gradients), which is exactly the gradient of one process holding the whole batch. Outside training, or alone,
    it is plain batch normalisation. State-dict keys are those of BatchNorm, so checkpoints load into the plain
    model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels, dims = x.shape[1], [0] + list(range(2, x.dim()))
        values = x.float()
        count = values.new_full((1,), values.numel() / channels)
        stats = dist_nn.all_reduce(torch.cat([values.sum(dims), (values * values).sum(dims), count]))
        n = stats[-1]
        mean = stats[:channels] / n
        var = (stats[channels:2 * channels] / n - mean * mean).clamp_min(0)  # biased, as BatchNorm normalises
        with torch.no_grad():
            self._update_running_stats(mean, var, n)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (values - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        # momentum None: a cumulative mean (recompute_batchnorm uses it), as BatchNorm does
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * n / (n - 1).clamp_min(1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


class GlobalBatchNorm1d(GlobalBatchNorm, torch.nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(GlobalBatchNorm, torch.nn.BatchNorm2d):
    pass


GLOBAL_VERSION = {torch.nn.BatchNorm1d: GlobalBatchNorm1d, torch.nn.BatchNorm2d: GlobalBatchNorm2d}


def use_global_batchnorm(model: torch.nn.Module) -> int:
    """Turn the model's BatchNorm1d/2d layers into their global versions in place (same parameters and buffers:
    only the class changes); returns how many."""
    changed = 0
    for module in model.modules():
        if type(module) in GLOBAL_VERSION:
            module.__class__ = GLOBAL_VERSION[type(module)]
            changed += 1
    return changed
