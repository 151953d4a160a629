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

A plan is a list of phases; the runs of a phase train at once (one process each, sharing the GPU), and a
phase starts when the one before it ends. A run is `ferkit train` with a config file and --set overrides; a
run may distil from earlier runs: `teachers: [names]`, of which the `teachers_top` best by PublicTest accuracy
(the only split anything is chosen on) are used. Every run is stopped at the plan's deadline, keeping its best
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
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEVICE = os.environ.get("SWEEP_DEVICE", "cuda")  # cpu: try a plan here first
PART_BYTES = 15 * 2**20
MAX_PARTS = 4  # $OUT brings back 8 files and 64 MiB; summary.json, probs.npz and the log take three


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def best_val_acc(run_dir: Path) -> float:
    from ferkit.classifier.checkpoint import load_checkpoint

    path = run_dir / "best.pt"
    return float(load_checkpoint(path).info.metrics["val_acc"]) if path.is_file() else -1.0


def launch(run: dict, data: Path, runs_dir: Path, threads: int) -> subprocess.Popen:
    out = runs_dir / run["name"]
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ferkit.cli", "train", "--config", str(ROOT / run["config"]), "--data", str(data),
           "--out", str(out), "--device", DEVICE, "--threads", str(threads), "--no-progress"]
    for item in run.get("set", []):
        cmd += ["--set", item]
    if run.get("teachers"):
        ranked = sorted(run["teachers"], key=lambda name: best_val_acc(runs_dir / name), reverse=True)
        chosen = ranked[:run.get("teachers_top", len(ranked))]
        log(f"{run['name']}: teachers {chosen} (best PublicTest accuracy of {ranked})")
        cmd += ["--set", "teachers=" + json.dumps([str(runs_dir / name / "best.pt") for name in chosen])]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    (out / "command.txt").write_text(" ".join(cmd) + "\n")
    return subprocess.Popen(cmd, stdout=open(out / "train.log", "w"), stderr=subprocess.STDOUT, env=env)


def run_phase(runs: list[dict], data: Path, runs_dir: Path, deadline: float, threads: int) -> None:
    procs = {run["name"]: launch(run, data, runs_dir, threads) for run in runs}
    started = time.time()
    while any(p.poll() is None for p in procs.values()):
        if time.time() > deadline:
            for name, p in procs.items():
                if p.poll() is None:
                    log(f"{name}: deadline reached, stopping (its best checkpoint stays)")
                    p.terminate()
            for p in procs.values():
                p.wait()
            break
        time.sleep(5)
    for name, p in procs.items():
        tail = (runs_dir / name / "train.log").read_text().strip().splitlines()[-1:] or ["(no output)"]
        log(f"{name}: exit {p.returncode} after {time.time() - started:.0f}s | {tail[0][:160]}")


def score(runs_dir: Path, names: list[str], data: Path, out: Path) -> dict:
    """PublicTest and PrivateTest metrics of every run's best checkpoint (reporting only: nothing is chosen
    here), and float16 probabilities for ensembles chosen on PublicTest later."""
    import numpy as np

    from ferkit.classifier.checkpoint import load_checkpoint
    from ferkit.classifier.torch_inference import predict_proba
    from ferkit.evaluate.metrics import classification_report
    from ferkit.evaluate.scoring import evaluation_data

    summary, probs_out = {}, {}
    for name in names:
        path = runs_dir / name / "best.pt"
        if not path.is_file():
            summary[name] = {"error": "no best.pt"}
            continue
        try:
            checkpoint = load_checkpoint(path)
            info = checkpoint.info
            model = checkpoint.build_model().to(DEVICE)
            history = [line.split(",") for line in (runs_dir / name / "history.csv").read_text().splitlines()]
            row = {"parameters": info.parameters, "best_epoch": info.epoch, "epochs_run": len(history) - 1,
                   "wall_s": round(_elapsed(runs_dir / name), 1),
                   "labels": len(info.labels)}
            for split in ("PublicTest", "PrivateTest"):
                faces = evaluation_data(data, split, info.labels)
                for tta in ((), ("flip",)):
                    p = predict_proba(model, faces.images, tta=tta, device=DEVICE, batch_size=1024)
                    report = classification_report(faces.labels, p.argmax(1), info.labels)
                    key = f"{split}{'_flip' if tta else ''}"
                    row[key] = {"accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4)}
                    probs_out[f"{name}/{key}"] = p.astype(np.float16)
            del model
        except Exception as exc:  # one broken run must not cost the others' figures
            row = {"error": f"{type(exc).__name__}: {exc}"}
        summary[name] = row
        log(f"{name}: {json.dumps(row)}")
    np.savez_compressed(out / "probs.npz", **probs_out)
    return summary


def _elapsed(run_dir: Path) -> float:
    from ferkit.classifier.checkpoint import load_checkpoint

    return float(load_checkpoint(run_dir / "last.pt").info.elapsed_s)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", type=Path)
    parser.add_argument("--pack", type=Path, default=ROOT / ".gpudata")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
    parser.add_argument("--runs", type=Path, default=Path("/tmp/sweep-runs"))
    args = parser.parse_args()
    start = time.time()
    plan = yaml.safe_load(args.plan.read_text())
    deadline = start + plan["deadline_s"]
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
    for index, phase in enumerate(plan["phases"]):
        phase_deadline = min(deadline, start + phase.get("ends_by_s", plan["deadline_s"]))
        log(f"phase {index}: {[run['name'] for run in phase['runs']]}")
        run_phase(phase["runs"], data, args.runs, phase_deadline, plan.get("threads", 1))
        names += [run["name"] for run in phase["runs"]]
    # The checkpoints first: a call cut off by its time limit still brings back what is already under $OUT, and
    # every figure of the summary can be measured again at home from them (tools/results_row.py).
    bring_back(args.runs, plan.get("bring_back", names), args.out, plan.get("bring_weights", True))
    log("checkpoints packed")
    summary = score(args.runs, names, data, args.out)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"done in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
