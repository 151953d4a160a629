"""One run of a sweep, with or without Ray: `python -m ferkit train` in a process of its own, in OUT/runs/NAME,
stopped at the plan's deadline if it comes first (best.pt stays), then its best checkpoint scored.

A run is resumable: a folder with a last.pt is continued with `train --resume`, and a run whose row.json says
"done" is not trained again (its row is reused). Nothing here imports Ray; ferkit.sweep.placement runs `run_job`
as a Ray task and experiments/gpu/gpu_sweep.py in a local pool.
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.files import write_atomically

ROW = "row.json"  # the scored row, with the status that ended the training: done, stopped (deadline) or error


@dataclass
class Job:
    name: str
    config: str                  # absolute path of the run's config file
    data: str                    # absolute path of the data (the same on every node of a cluster)
    runs: str                    # the sweep's runs folder (OUT/runs); this run's is RUNS/NAME
    sets: list[str] = field(default_factory=list)
    teachers: list[str] = field(default_factory=list)  # the chosen teachers' best.pt paths
    threads: int = 1
    device: str | None = None    # None: the config's own
    deadline: float | None = None  # time.time() at which a training still going is stopped
    token: str = ""              # this sweep's attempt, written to RUNS/NAME/attempt when the run starts

    @property
    def folder(self) -> Path:
        return Path(self.runs) / self.name

    def to_dict(self) -> dict:
        return asdict(self)


def best_val_acc(folder: Path) -> float:
    """A run's PublicTest accuracy as its best checkpoint recorded it (-1 when it has none): what teachers are
    chosen by. PrivateTest is never looked at here."""
    from ferkit.classifier.checkpoint import load_checkpoint

    path = folder / "best.pt"
    return float(load_checkpoint(path).info.metrics["val_acc"]) if path.is_file() else -1.0


def choose_teachers(names: list[str], top: int, runs_dir: Path) -> tuple[list[str], list[str]]:
    """(chosen, ranked): `names` by PublicTest accuracy, best first, those without a best.pt left out; the first
    `top` of them (0: all)."""
    scores = {name: best_val_acc(runs_dir / name) for name in names}
    ranked = sorted((name for name in names if scores[name] >= 0), key=lambda name: scores[name], reverse=True)
    return ranked[:top or len(ranked)], ranked


def train_command(job: Job) -> list[str]:
    folder = job.folder
    cmd = [sys.executable, "-m", "ferkit", "train", "--out", str(folder), "--no-progress",
           "--threads", str(job.threads)]
    if (folder / "last.pt").is_file():  # its config (teachers included) is in last.pt
        cmd.append("--resume")
    else:
        cmd += ["--config", job.config, "--data", job.data]
        for item in job.sets:
            cmd += ["--set", item]
        if job.teachers:
            cmd += ["--set", "teachers=" + json.dumps(job.teachers)]
    if job.device:
        cmd += ["--device", job.device]
    return cmd


def train_run(job: Job, poll_s: float = 1.0) -> dict:
    """Train or resume the run; return {"status": done | stopped | error, "error"?: the log's last line}."""
    folder = job.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attempt").write_text(job.token)
    cmd = train_command(job)
    resuming = "--resume" in cmd
    with open(folder / "command.txt", "a" if resuming else "w") as handle:
        handle.write(shlex.join(cmd) + "\n")
    # The same ferkit as this process's, and threads as planned (Ray sets CUDA_VISIBLE_DEVICES for a GPU share;
    # the training inherits it).
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds this ferkit package
    env = dict(os.environ, OMP_NUM_THREADS=str(job.threads), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    stopped = False
    with open(folder / "train.log", "a" if resuming else "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent)
        try:
            while process.poll() is None:
                if job.deadline is not None and time.time() > job.deadline:
                    stopped = True
                    process.terminate()  # checkpoints are written atomically: the last whole ones stay
                    process.wait()
                    break
                time.sleep(poll_s)
        finally:
            if process.poll() is None:  # interrupted or cancelled: the training stops with us
                process.terminate()
                process.wait()
    if stopped:
        return {"status": "stopped", "note": "stopped at the plan's deadline"}
    if process.returncode != 0:
        lines = (folder / "train.log").read_text(errors="replace").strip().splitlines()
        return {"status": "error", "error": f"train exited {process.returncode}: "
                                            f"{lines[-1][:300] if lines else '(no output)'}"}
    return {"status": "done"}


def _prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _prctl()  # looked up here: the child of a fork runs as little Python as it can


def _die_with_parent() -> None:
    """Linux: the training gets SIGTERM when the process that started it dies (a Ray worker killed on Ctrl-C), so
    that no orphan keeps training."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def score_run(folder: Path, data: str | Path, device: str | None = None, probabilities: bool = False):
    """The row of a run's best checkpoint: parameters, best epoch, epochs run, training seconds, and accuracy and
    macro F1 on PublicTest and PrivateTest, plain and with flip TTA (reporting only: nothing is chosen on them).
    With probabilities, also {"SPLIT[_flip]": float16 probabilities}."""
    import numpy as np
    import torch

    from ferkit.classifier.checkpoint import load_checkpoint
    from ferkit.classifier.torch_inference import predict_proba
    from ferkit.evaluate.metrics import classification_report
    from ferkit.evaluate.scoring import evaluation_data

    path = folder / "best.pt"
    if not path.is_file():
        raise FerkitError(f"{folder.name}: no best.pt")
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    checkpoint = load_checkpoint(path)
    info = checkpoint.info
    model = checkpoint.build_model().to(device)
    history = (folder / "history.csv").read_text().strip().splitlines() if (folder / "history.csv").is_file() else []
    last = folder / "last.pt"
    wall = load_checkpoint(last).info.elapsed_s if last.is_file() else info.elapsed_s
    row = {"parameters": info.parameters, "best_epoch": info.epoch, "epochs_run": max(0, len(history) - 1),
           "wall_s": round(float(wall or 0.0), 1), "labels": len(info.labels)}
    probs = {}
    for split in ("PublicTest", "PrivateTest"):
        faces = evaluation_data(data, split, info.labels)
        for tta in ((), ("flip",)):
            p = predict_proba(model, faces.images, tta=tta, device=device, batch_size=1024)
            report = classification_report(faces.labels, p.argmax(1), info.labels)
            key = f"{split}{'_flip' if tta else ''}"
            row[key] = {"accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4)}
            probs[key] = p.astype(np.float16)
    return (row, probs) if probabilities else row


def finished_row(folder: Path) -> dict | None:
    """The row of a run that trained to its end in an earlier attempt, else None."""
    try:
        row = json.loads((folder / ROW).read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("status") == "done" else None


def run_job(job: Job | dict, teacher_names: list[str] | None = None) -> dict:
    """Train (or resume, or skip when done) and score one run; return its row. A failure is an error row, never an
    exception, so that the sweep goes on."""
    job = Job(**job) if isinstance(job, dict) else job
    folder = job.folder
    done = finished_row(folder)
    if done is not None:
        return {**done, "skipped": True}
    started = time.time()
    try:
        row = train_run(job)
        if row["status"] != "error":
            row.update(score_run(folder, job.data, job.device))
    except FerkitError as exc:
        row = {"status": "error", "error": str(exc)}
    except Exception as exc:  # one broken run must not cost the others their figures
        row = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    row["teachers"] = teacher_names or []
    row["seconds"] = round(time.time() - started, 1)
    _write_row(folder, row)
    return row


def _write_row(folder: Path, row: dict) -> None:
    write_atomically(folder / ROW, json.dumps(row, indent=1))
