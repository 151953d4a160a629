"""Training throughput of a registered net: img/s of full SGD steps (forward, backward, update) on random faces,
for each input side and precision asked for, as ratios against fp32 at 48×48 measured in the same run.

    python bench/train_throughput.py --model vgg --model-kwargs '{width: 32, convs_per_stage: [1, 2, 2, 2]}' \
        --sides 48 32 --bf16 --threads 2

What it answers: how much progressive resizing (a smaller side) and bf16 autocast buy on this machine before a
timed run is planned around them. Random inputs make no accuracy claim; the step cost does not depend on them.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F
import yaml

from ferkit.models import create_model


def steps_per_second(model, side: int, batch: int, bf16: bool, seconds: float) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 1, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: oneDNN picks and caches its kernels for these shapes
        step()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vgg")
    parser.add_argument("--model-kwargs", default="{width: 32, convs_per_stage: [1, 2, 2, 2]}",
                        help="YAML mapping of the model's arguments")
    parser.add_argument("--sides", type=int, nargs="+", default=[48, 32])
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per setting")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, **(yaml.safe_load(args.model_kwargs) or {})).train()
    model = model.to(memory_format=torch.channels_last)
    cpu = platform.processor() or platform.machine()
    print(f"{args.model} {args.model_kwargs} | batch {args.batch} | {args.threads} threads | {cpu} | "
          f"torch {torch.__version__}")
    baseline = None
    for bf16 in ([False, True] if args.bf16 else [False]):
        for side in args.sides:
            rate = steps_per_second(model, side, args.batch, bf16, args.seconds) * args.batch
            baseline = baseline or rate  # the first setting timed: fp32 at the first side
            print(f"{'bf16' if bf16 else 'fp32'} {side}×{side}: {rate:7.1f} img/s  ({rate / baseline:.2f}× "
                  f"fp32 {args.sides[0]}×{args.sides[0]})")


if __name__ == "__main__":
    main()
