"""Run a plan of trainings side by side on one lent GPU machine, then bring back what fits in its 64 MiB.

    python experiments/gpu/gpu_sweep.py PLAN.yaml --pack .gpudata --out $OUT

A lease, step by step (the shipped weights and the pack do not fit in one 64 MiB transfer together):

    python experiments/gpu/gpu_pack.py pack ../shared/data/fer2013/fer2013.csv.gz .gpudata     # here, once (2 min)
    python experiments/gpu/gpu_tree.py hold                             # here: the shipped weights stay behind
    python experiments/gpu/gpu_tree.py size --carry .gpudata            # here: under 64 MiB?
    device run, carry [".gpudata"], timeout_s 590:
        python3 experiments/gpu/gpu_sweep.py experiments/gpu/plans/gpu_main.yaml --pack .gpudata --out $OUT \\
            2>&1 | tee $OUT/sweep.log
    python experiments/gpu/gpu_tree.py restore                                                  # here, at once
    for t in FILES_AT/runs-*.tar; do tar -xf $t -C runs/; done                       # then results_row.py per run

The plan format, its check, each run and its scoring are `ferkit sweep`'s (ferkit.sweep.plan and ferkit.sweep.run);
only the placement differs: the lease machine has no Ray (its 79 MB wheel cannot travel in a 64 MiB transfer), so
the runs of a phase are placed by a plain local pool here, one `ferkit train` process each, all at once, sharing
the GPU (a plan's cpus and gpus shares are not enforced). A phase starts when the one before it ends. A run may
distil from earlier runs: `teachers: [names]`, of which the `teachers_top` best by PublicTest accuracy (the only
split anything is chosen on) are used. Every run is stopped at the plan's deadline, keeping its best
checkpoint. Then the checkpoints are packed (first, so that a call cut off by its limit still brings them back),
and every run's best checkpoint is scored on PublicTest and PrivateTest (plain and flip TTA) and
its probabilities saved, for the results table and for ensembles chosen on PublicTest back home. What comes
back: summary.json, and tar parts (≤ 15 MiB each) holding each run's history, log, config and slim fp16
checkpoint, in the plan's `bring_back` order, as many as fit.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEVICE = os.environ.get("SWEEP_DEVICE", "cuda")  # cpu: try a plan here first
PART_BYTES = 15 * 2**20
MAX_PARTS = 4  # $OUT brings back 8 files and 64 MiB; summary.json, probs.npz and the log take three


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_phase(phase, data: Path, runs_dir: Path, deadline: float) -> None:
    """The runs of a phase side by side, one `ferkit train` process each (ferkit.sweep.run), from a thread pool."""
    from ferkit.sweep.run import Job, choose_teachers, train_run

    jobs = []
    for spec in phase.runs:
        chosen = []
        if spec.teachers:
            chosen, ranked = choose_teachers(spec.teachers, spec.teachers_top, runs_dir)
            log(f"{spec.name}: teachers {chosen} (best PublicTest accuracy of {ranked})")
        jobs.append(Job(spec.name, spec.config, str(data), str(runs_dir.absolute()), spec.sets,
                        [str((runs_dir / name / "best.pt").absolute()) for name in chosen], spec.threads,
                        DEVICE, deadline))
    started = time.time()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {pool.submit(train_run, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            result = future.result()
            tail = (job.folder / "train.log").read_text().strip().splitlines()[-1:] or ["(no output)"]
            log(f"{job.name}: {result['status']} after {time.time() - started:.0f}s | {tail[0][:160]}")


def score(runs_dir: Path, names: list[str], data: Path, out: Path) -> dict:
    """PublicTest and PrivateTest metrics of every run's best checkpoint (ferkit.sweep.run.score_run; reporting
    only: nothing is chosen here), and float16 probabilities for ensembles chosen on PublicTest later."""
    import numpy as np

    from ferkit.sweep.run import score_run

    summary, probs_out = {}, {}
    for name in names:
        try:
            row, probs = score_run(runs_dir / name, data, DEVICE, probabilities=True)
            probs_out.update({f"{name}/{key}": p for key, p in probs.items()})
        except Exception as exc:  # one broken run must not cost the others' figures
            row = {"error": f"{type(exc).__name__}: {exc}"}
        summary[name] = row
        log(f"{name}: {json.dumps(row)}")
    np.savez_compressed(out / "probs.npz", **probs_out)
    return summary


def slim_checkpoint(path: Path) -> bytes:
    """best.pt with float16 weights: half the bytes to carry; loads back as float32 (Checkpoint.build_model)."""
    from ferkit.classifier.checkpoint import load_checkpoint, save_checkpoint, slim

    checkpoint = slim(load_checkpoint(path), half=True)
    checkpoint.info.origin["transfer"] = "float16 weights from a GPU sweep (experiments/gpu/gpu_sweep.py)"
    target = path.with_name("best.fp16.pt")
    save_checkpoint(target, checkpoint)
    data = target.read_bytes()
    target.unlink()
    return data


def bring_back(runs_dir: Path, order: list[str], out: Path, with_weights: bool = True) -> None:
    small, weights = [], []
    for name in order:
        run = runs_dir / name
        for item in ("history.csv", "train.log", "config.yaml", "command.txt", "curves.png"):
            if (run / item).is_file():
                small.append((f"{name}/{item}", (run / item).read_bytes()))
        if with_weights and (run / "best.pt").is_file():
            weights.append((f"{name}/best.pt", slim_checkpoint(run / "best.pt")))
    parts, current, size = [], [], 0
    for member in small + weights:
        if len(member[1]) > PART_BYTES:
            log(f"{member[0]}: {len(member[1]) / 2**20:.1f} MiB, too big to bring back")
            continue
        if size + len(member[1]) > PART_BYTES:
            parts.append(current)
            current, size = [], 0
        current.append(member)
        size += len(member[1])
    parts.append(current)
    for index, members in enumerate(parts[:MAX_PARTS]):
        with tarfile.open(out / f"runs-{index}.tar", "w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    for members in parts[MAX_PARTS:]:
        log(f"left behind (no room): {[name for name, _ in members]}")


def plan_extras(path: Path) -> dict:
    """The plan's keys for this script alone (bring_back, bring_weights), which ferkit sweep accepts and ignores."""
    import yaml

    return yaml.safe_load(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", type=Path)
    parser.add_argument("--pack", type=Path, default=ROOT / ".gpudata")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
    parser.add_argument("--runs", type=Path, default=Path("/tmp/sweep-runs"))
    args = parser.parse_args()
    start = time.time()
    from ferkit.sweep.plan import load_plan

    plan = load_plan(args.plan)  # checked whole before anything trains
    if plan.deadline_s is None:
        raise SystemExit(f"{args.plan}: a lease plan needs deadline_s (a device call runs 600 s at most)")
    deadline = start + plan.deadline_s
    raw = plan_extras(args.plan)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FERKIT_CACHE", "/tmp/ferkit-cache")

    from gpu_pack import unpack

    data = unpack(args.pack, Path("/tmp/fer2013"))
    from ferkit.data import load_dataset  # parse once, so the runs all read the cache

    votes = (data.parent / "fer2013new.csv.gz").exists()
    for labels in ("fer2013", "ferplus") if votes else ("fer2013",):
        load_dataset(data, labels=labels)
    log(f"data ready in {time.time() - start:.0f}s")
    names = []
    for index, phase in enumerate(plan.phases):
        phase_deadline = min(deadline, start + (phase.ends_by_s or plan.deadline_s))
        log(f"phase {index}: {[run.name for run in phase.runs]}")
        run_phase(phase, data, args.runs, phase_deadline)
        names += [run.name for run in phase.runs]
    # The checkpoints first: a call cut off by its time limit still brings back what is already under $OUT, and
    # every figure of the summary can be measured again at home from them (tools/results_row.py).
    bring_back(args.runs, raw.get("bring_back", names), args.out, raw.get("bring_weights", True))
    log("checkpoints packed")
    summary = score(args.runs, names, data, args.out)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"done in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
