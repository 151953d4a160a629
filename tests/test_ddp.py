"""Training under torchrun (DistributedDataParallel, gloo, two processes on 127.0.0.1), on real FER2013 rows:
the processes hold identical weights after every step; two processes with synchronised batch norm follow one
process with the same global batch; a run killed under DDP resumes to exactly the weights of an uninterrupted one;
what DDP cannot do is refused in one line.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "ddp_probe.py"


def _small_csv(source: Path, out: Path, training: int = 1_024, tests: int = 128) -> Path:
    """Real rows from the start of the file (all Training there) relabelled as Training, PublicTest, PrivateTest."""
    with gzip.open(source, "rt") as handle:
        header = next(handle)
        rows = [next(handle).rsplit(",", 1)[0] for _ in range(training + 2 * tests)]
    usages = ["Training"] * training + ["PublicTest"] * tests + ["PrivateTest"] * tests
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fer2013.csv"
    path.write_text(header + "".join(f"{row},{usage}\n" for row, usage in zip(rows, usages)))
    return path


@pytest.fixture(scope="module")
def small_csv(fer2013_path, tmp_path_factory) -> Path:
    return _small_csv(fer2013_path, tmp_path_factory.mktemp("ddp-data"))


def _env(tmp: Path) -> dict:
    # One thread per process (2 processes, 2 cores); the cache is shared, as on one machine.
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"), MASTER_ADDR="127.0.0.1",
                GLOO_SOCKET_IFNAME="lo", FERKIT_CACHE=os.environ.get("FERKIT_CACHE", str(tmp / "cache")))


def torchrun(nproc: int, *args: str, tmp: Path, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    if popen:
        return subprocess.Popen(command, env=_env(tmp), **popen)
    return subprocess.run(command, env=_env(tmp), capture_output=True, text=True, timeout=300)


def _config(csv: Path, **values) -> dict:
    base = {"model": "vgg", "model_kwargs": {"width": 8, "dropout": 0.0, "hidden": 32}, "data": str(csv),
            "epochs": 2, "batch_size": 64, "lr": 0.02, "progress": False, "threads": 1, "device": "cpu",
            "augment": {"hflip": True, "shift": 0.1, "rotation": 10}}
    return {**base, **values}


def _probe(config: dict, nproc: int, tmp: Path, name: str) -> tuple[dict, Path]:
    config_path, run_dir, out = tmp / f"{name}.yaml", tmp / name, tmp / f"{name}.json"
    config_path.write_text(yaml.safe_dump(config))
    if nproc == 1:
        result = subprocess.run([sys.executable, str(PROBE), str(config_path), str(run_dir), str(out)],
                                env=_env(tmp), capture_output=True, text=True, timeout=300)
    else:
        result = torchrun(nproc, str(PROBE), str(config_path), str(run_dir), str(out), tmp=tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import json

    return json.loads(out.read_text()), run_dir


def _weights(run_dir: Path) -> dict:
    from ferkit.classifier.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "last.pt").model_state


FEATURES = {
    "ema_progressive_mixup": dict(sync_bn=True, ema=0.99, tta=["flip"], progressive_size=32,
                                  augment={"hflip": True, "shift": 0.1, "mixup": 0.2}),
    "swa_distillation": dict(swa=1.0, schedule="none", teachers=["fast"], distill_weight=0.5,
                             class_weights="balanced"),
}


@pytest.mark.slow
@pytest.mark.parametrize("features", FEATURES, ids=list(FEATURES))
def test_two_processes_hold_identical_weights_after_every_step(small_csv, tmp_path, features):
    """Augmentation and dropout on: each process draws its own, yet DDP's averaged gradients keep them equal, with
    the engine's features on (EMA, progressive resizing, mixup, sync BN; SWA with BN recomputed, offline teachers)."""
    config = _config(small_csv, model_kwargs={"width": 8, "dropout": 0.2, "hidden": 32}, **FEATURES[features])
    probe, run_dir = _probe(config, 2, tmp_path, "ranks")
    steps = 2 * (1_024 // 64)
    assert probe["world"] == 2 and len(probe["digests"]) == steps
    synced = FEATURES[features].get("sync_bn", False)
    for step, digests in enumerate(probe["digests"]):
        (params_0, buffers_0), (params_1, buffers_1) = (d.split(":") for d in digests)
        assert params_0 == params_1, f"the processes' weights differ after step {step + 1}"
        assert (buffers_0 == buffers_1) == synced, f"BN statistics after step {step + 1} (sync_bn {synced})"
    assert len(set(d[0] for d in probe["digests"])) == steps  # the weights moved at every step
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3  # rank 0 alone wrote: one header, two epochs


@pytest.mark.slow
def test_two_processes_with_synchronised_batchnorm_follow_one_process(small_csv, tmp_path):
    """Same global batch (64 = 2 x 32), no augmentation or dropout: what is left is the order of float sums. Early
    training is chaotic (one process on 1 and on 2 threads parts by 1e-2 in 16 steps at lr 0.02), so the runs are
    compared over 4 steps at lr 0.002, where 1 and 2 threads differ by 1.3e-6 and two processes by 1.6e-5 (measured,
    AMD EPYC): the bar is 1e-4. Without synchronised batch norm each process normalises by its own half batch, and
    the runs part by 2e-2: the bar asks for 100 times the synchronised gap."""
    plain = dict(augment={"rotation": 0, "shift": 0, "zoom": 0, "shear": 0, "hflip": False}, epochs=1, lr=0.002,
                 subset=256)
    _, alone = _probe(_config(small_csv, **plain), 1, tmp_path, "alone")
    _, synced = _probe(_config(small_csv, sync_bn=True, **plain), 2, tmp_path, "synced")
    _, unsynced = _probe(_config(small_csv, sync_bn=False, **plain), 2, tmp_path, "unsynced")
    one, two, apart = _weights(alone), _weights(synced), _weights(unsynced)

    def largest_gap(other: dict) -> float:
        return max(float((one[k].float() - other[k].float()).abs().max()) for k in one if one[k].is_floating_point())

    assert set(one) == set(two)  # the global batch norm saves plain BatchNorm keys
    assert largest_gap(two) < 1e-4, largest_gap(two)
    assert largest_gap(apart) > 100 * largest_gap(two), (largest_gap(apart), largest_gap(two))
    row_alone = (alone / "history.csv").read_text().splitlines()[1].split(",")
    row_synced = (synced / "history.csv").read_text().splitlines()[1].split(",")
    assert abs(float(row_alone[2]) - float(row_synced[2])) < 1e-4  # the epoch's train loss


@pytest.mark.slow
def test_a_run_killed_under_ddp_resumes_exactly(small_csv, tmp_path):
    """`torchrun -m ferkit train`, killed (SIGKILL to every process) after its first checkpoint, then
    `--resume` under torchrun: the same weights and history, to the bit, as a run never interrupted."""
    common = ["--model", "vgg", "--set", "model_kwargs={width: 8, dropout: 0.2, hidden: 32}", "--data",
              str(small_csv), "--subset", "512", "--epochs", "3", "--batch-size", "32", "--device", "cpu",
              "--no-progress",
              "--set", "augment={hflip: true, shift: 0.1}", "--set", "sync_bn=true"]
    whole = torchrun(2, "-m", "ferkit", "train", *common, "--out", str(tmp_path / "whole"), tmp=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "best " in whole.stdout and whole.stdout.count("checkpoints in") == 1  # one process speaks

    killed_dir = tmp_path / "killed"
    run = torchrun(2, "-m", "ferkit", "train", *common, "--out", str(killed_dir), tmp=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not (killed_dir / "last.pt").exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    from ferkit.classifier.checkpoint import load_checkpoint

    assert load_checkpoint(killed_dir / "last.pt").info.epoch < 3, "the run ended before it could be killed"
    resumed = torchrun(2, "-m", "ferkit", "train", "--resume", "--out", str(killed_dir), "--no-progress",
                       tmp=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(tmp_path / "whole"), _weights(killed_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)

    def learned(run_dir: Path) -> list[list[str]]:  # history without its timings
        rows = [line.split(",") for line in (run_dir / "history.csv").read_text().splitlines()]
        keep = [i for i, name in enumerate(rows[0]) if name not in ("seconds", "img_per_s")]
        return [[row[i] for i in keep] for row in rows]

    assert learned(tmp_path / "whole") == learned(killed_dir)


@pytest.mark.slow
@pytest.mark.parametrize("setting, message", [
    ("time_budget_min=1", "time_budget_min cannot run under torchrun"),
    ("batch_size=63", "batch_size 63 is the global batch and must divide among 2 processes"),
])
def test_what_ddp_cannot_do_is_refused_in_one_line(small_csv, tmp_path, setting, message):
    result = torchrun(2, "-m", "ferkit", "train", "--model", "simple_cnn", "--data", str(small_csv), "--epochs",
                      "1", "--out", str(tmp_path / "run"), "--set", setting, tmp=tmp_path)
    assert result.returncode != 0
    assert f"error: {message}" in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("ferkit train:")]
    assert len(set(ours)) == 1 and ours[0].startswith(f"ferkit train: error: {message}")  # the same line per process
    before_torchrun = result.stderr.split("elastic")[0]  # then torchrun reports its ChildFailedError: not ours
    assert "Traceback" not in before_torchrun
