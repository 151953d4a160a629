"""Run by tests/test_ddp.py under torchrun: a real training (the engine's own Trainer) that also records, after
every optimiser step, sha256s of this process's parameters and buffers, gathered on rank 0 and written to
PROBE_OUT as JSON.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_probe.py CONFIG.yaml RUN_DIR PROBE_OUT
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch
import torch.distributed as dist

from ferkit.train.config import TrainConfig
from ferkit.train.engine import Trainer


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the parameters, then of the buffers (BN statistics): "params:buffers". Without sync BN each
    process keeps statistics of its own share of the batch (DDP sends rank 0's before each forward)."""
    parts = []
    for tensors in (model.named_parameters(), model.named_buffers()):
        digest = hashlib.sha256()
        for name, tensor in tensors:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        parts.append(digest.hexdigest())
    return ":".join(parts)


class ProbedTrainer(Trainer):
    def _set_up(self) -> None:
        super()._set_up()
        self.digests: list[list[str]] = []
        step = self.optimizer.step

        def step_and_compare(*args, **kwargs):
            result = step(*args, **kwargs)
            mine = weights_digest(self.model)
            everyone = [mine]
            if dist.is_initialized():  # alone, there is no one to compare with
                everyone = [None] * dist.get_world_size()
                dist.all_gather_object(everyone, mine)
            self.digests.append(everyone)
            return result

        self.optimizer.step = step_and_compare


def main() -> None:
    config_path, run_dir, probe_out = sys.argv[1:4]
    trainer = ProbedTrainer(TrainConfig.from_yaml(config_path), run_dir)
    trainer.run()
    if trainer.processes.is_main:
        with open(probe_out, "w") as handle:
            json.dump({"digests": trainer.digests, "world": trainer.processes.world}, handle)


if __name__ == "__main__":
    main()
