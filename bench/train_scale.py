"""Training throughput when a run spreads over processes (torchrun, DDP) or when several runs share a machine
(what `ferkit sweep` places: one `ferkit train` process per run). Real `ferkit train` commands on real FER2013
rows; img/s is read from each run's history.csv (global images of its epochs after the first, which warms up),
and every figure is printed as a ratio against one process alone, measured in the same run.

    python bench/train_scale.py --data ../shared/data/fer2013/fer2013.csv.gz --processes 1 2 --json ddp.json
    python bench/train_scale.py --data DATA --device cuda --concurrent 1 4 --config configs/default.yaml \\
        --set init_from= --set time_budget_min=0 --json gpu.json

--processes N: one run over N processes (torchrun --standalone --nproc-per-node N -m ferkit train), each with
cores/N threads on the CPU, or one GPU each. --concurrent N: N separate runs at once, sharing the machine (on a
GPU, the one GPU), each with cores/N threads; their img/s summed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def train_command(args, out: Path, threads: int) -> list[str]:
    command = ["-m", "ferkit", "train", "--data", args.data, "--out", str(out), "--epochs", str(args.epochs),
               "--device", args.device, "--threads", str(threads), "--no-progress",
               "--set", f"subset={args.subset}", "--set", f"val_subset={args.val_subset}"]
    if args.config:
        command += ["--config", args.config]
    else:
        command += ["--model", args.model, "--set", f"model_kwargs={args.model_kwargs}"]
    for item in args.set:
        command += ["--set", item]
    return command


def run_rate(out: Path) -> float:
    """Global img/s of a finished run: its epochs after the first (warm-up), from history.csv."""
    rows = list(csv.DictReader(open(out / "history.csv")))
    timed = rows[1:] or rows
    images = sum(float(r["img_per_s"]) * float(r["seconds"]) for r in timed)
    return images / sum(float(r["seconds"]) for r in timed)


def launch(args, command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *command], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_all(procs: list[tuple[subprocess.Popen, Path]]) -> None:
    for proc, log in procs:
        if proc.wait() != 0:
            sys.exit(f"a training failed; its log: {log}\n{log.read_text()[-2000:]}")


def measure_processes(args, n: int, work: Path, cores: int) -> float:
    out = work / f"ddp{n}"
    threads = max(1, cores // n)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MASTER_ADDR="127.0.0.1")
    if n == 1:
        command = train_command(args, out, threads)
    else:
        command = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
                   *train_command(args, out, threads)]
    wait_all([(launch(args, command, env, work / f"ddp{n}.log"), work / f"ddp{n}.log")])
    return run_rate(out)


def measure_concurrent(args, n: int, work: Path, cores: int) -> tuple[float, list[float]]:
    threads = max(1, cores // n)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    procs = []
    for i in range(n):
        out, log = work / f"runs{n}_{i}", work / f"runs{n}_{i}.log"
        procs.append((launch(args, train_command(args, out, threads) + ["--seed", str(i)], env, log), log))
    wait_all(procs)
    rates = [run_rate(work / f"runs{n}_{i}") for i in range(n)]
    return sum(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FER2013 csv(.gz)")
    parser.add_argument("--config", help="a training config (its data is replaced by --data)")
    parser.add_argument("--model", default="vgg")
    parser.add_argument("--model-kwargs", default="{width: 40, convs_per_stage: [1, 2, 2, 2], dropout: 0.3}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up and not counted")
    parser.add_argument("--subset", type=int, default=4096, help="Training rows per epoch")
    parser.add_argument("--val-subset", type=int, default=256)
    parser.add_argument("--processes", type=int, nargs="*", default=[], help="DDP process counts to time")
    parser.add_argument("--concurrent", type=int, nargs="*", default=[], help="numbers of runs at once to time")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if not args.processes and not args.concurrent:
        parser.error("give --processes and/or --concurrent")
    result = {"cpu": cpu_name(), "cores": args.cores, "device": args.device, "subset": args.subset,
              "config": args.config or f"{args.model} {args.model_kwargs}", "overrides": args.set,
              "date": time.strftime("%Y-%m-%d"), "processes": {}, "concurrent": {}}
    if args.device.startswith("cuda"):
        import torch

        result["gpu"] = torch.cuda.get_device_name(0)
    print(f"{result['config']} | {args.device} | {result['cpu']}, {args.cores} cores | {args.subset} images/epoch")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        baseline = None
        for n in args.processes:
            rate = measure_processes(args, n, work, args.cores)
            baseline = baseline or rate
            result["processes"][str(n)] = {"img_per_s": round(rate, 1), "vs_1": round(rate / baseline, 2)}
            print(f"one run over {n} process(es): {rate:8.1f} img/s ({rate / baseline:.2f}x the first)")
        for n in args.concurrent:
            total, rates = measure_concurrent(args, n, work, args.cores)
            baseline = baseline or total
            result["concurrent"][str(n)] = {"img_per_s": round(total, 1), "each": [round(r, 1) for r in rates],
                                            "vs_first": round(total / baseline, 2)}
            print(f"{n} run(s) at once: {total:8.1f} img/s in all ({total / baseline:.2f}x the first), each "
                  f"{', '.join(f'{r:.0f}' for r in rates)}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
