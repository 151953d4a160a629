"""experiments/gpu/gpu_sweep.py and its plans: a plan must be right before a lease starts (a lease is 15 minutes).

Every plan is checked without training (configs load, every --set applies, every net builds, teachers name
earlier runs), and a small plan runs end to end on the CPU (SWEEP_DEVICE=cpu): pack, unpack, train side by side,
distil from the best earlier run, bring back checkpoints that load, score.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "experiments" / "gpu"
SWEEP = GPU / "gpu_sweep.py"
PLANS = sorted((GPU / "plans").glob("*.yaml"))


def _train_config(run: dict):
    from ferkit.train.config import TrainConfig

    return TrainConfig.from_yaml(REPO / run["config"]).override(run.get("set", []))


@pytest.mark.parametrize("plan_path", PLANS, ids=[p.stem for p in PLANS])
def test_every_plan_resolves_before_a_lease(plan_path):
    from ferkit.models import create_model

    plan = yaml.safe_load(plan_path.read_text())
    assert 0 < plan["deadline_s"] < 590, "one device call runs 600 s at most, packing and scoring included"
    seen: list[str] = []
    for phase in plan["phases"]:
        names = [run["name"] for run in phase["runs"]]
        for run in phase["runs"]:
            cfg = _train_config(run)
            create_model(cfg.model, num_classes=8 if cfg.labels == "ferplus" else 7, **cfg.model_kwargs)
            for teacher in run.get("teachers", []):
                assert teacher in seen, f"{run['name']}: teacher {teacher} is not an earlier phase's run"
            # A lease carries no shipped weights (experiments/gpu/gpu_tree.py hold): a config's own teachers (which the
            # run's `teachers`, if any, replace) would not be on the machine.
            assert run.get("teachers") or not cfg.teachers, \
                f"{run['name']}: teachers {cfg.teachers} will not be on the machine; add teachers=[] to its set"
            assert cfg.time_budget_min * 60 < plan["deadline_s"] or cfg.time_budget_min == 0
        seen += names
    assert len(seen) == len(set(seen)), "run names must be unique"
    assert set(plan.get("bring_back", [])) <= set(seen)


def summary_accuracy(tmp_path: Path, name: str) -> float:
    """The PublicTest accuracy the sweep ranked a run by: its best checkpoint's own validation figure."""
    from ferkit.classifier.checkpoint import load_checkpoint

    return float(load_checkpoint(tmp_path / "runs" / name / "best.pt").info.metrics["val_acc"])


def _small_fer_csv(source: Path, out: Path) -> Path:
    """2,100 real rows (pixels and labels) from the start of the file, as 1,500 Training, 300 PublicTest and 300
    PrivateTest rows: the first rows of the real file are all Training."""
    with gzip.open(source, "rt") as handle:
        header = next(handle)
        rows = [next(handle).rsplit(",", 1)[0] for _ in range(2_100)]
    usages = ["Training"] * 1_500 + ["PublicTest"] * 300 + ["PrivateTest"] * 300
    out.mkdir(parents=True)
    path = out / "fer2013.csv"
    path.write_text(header + "".join(f"{row},{usage}\n" for row, usage in zip(rows, usages)))
    return path


@pytest.mark.slow
def test_a_small_plan_runs_end_to_end_on_the_cpu(fer2013_path, tmp_path):
    csv = _small_fer_csv(fer2013_path, tmp_path / "src")
    subprocess.run([sys.executable, str(GPU / "gpu_pack.py"), "pack", str(csv), str(tmp_path / "pack")],
                   check=True, capture_output=True)
    tiny = ["subset=256", "val_subset=0", "epochs=1", "batch_size=64", "bf16=false", "progress=false"]
    plan = {"deadline_s": 300, "threads": 1, "phases": [
        {"runs": [{"name": "a", "config": "configs/seed_budget.yaml", "set": tiny + ["model=simple_cnn"]},
                  {"name": "b", "config": "configs/seed_budget.yaml", "set": tiny + ["model=mini_xception"]}]},
        {"runs": [{"name": "kd", "config": "configs/fast_r1.yaml", "teachers": ["a", "b"], "teachers_top": 1,
                   "set": tiny + ["teachers=[]"]}]}],
        "bring_back": ["kd", "a", "b"]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    env = dict(os.environ, SWEEP_DEVICE="cpu", FERKIT_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(SWEEP), str(tmp_path / "plan.yaml"),
                             "--pack", str(tmp_path / "pack"), "--out", str(tmp_path / "out"),
                             "--runs", str(tmp_path / "runs")], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # The distilled run learnt from the better of a and b by PublicTest accuracy alone.
    assert "kd: teachers [" in result.stdout
    command = (tmp_path / "runs" / "kd" / "command.txt").read_text()
    chosen = "a" if summary_accuracy(tmp_path, "a") >= summary_accuracy(tmp_path, "b") else "b"
    assert f"teachers=[\"{tmp_path / 'runs' / chosen / 'best.pt'}\"]" in command

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary) == {"a", "b", "kd"}
    for row in summary.values():
        assert 0.0 <= row["PublicTest_flip"]["accuracy"] <= 1.0 and row["epochs_run"] == 1

    from ferkit.classifier.checkpoint import load_checkpoint

    unpacked = tmp_path / "home"
    for part in sorted((tmp_path / "out").glob("runs-*.tar")):
        with tarfile.open(part) as tar:
            tar.extractall(unpacked)
    for name in ("a", "b", "kd"):
        model = load_checkpoint(unpacked / name / "best.pt").build_model()
        assert next(model.parameters()).dtype.is_floating_point and (unpacked / name / "history.csv").is_file()


def test_gpu_tree_counts_what_would_travel(tmp_path):
    spec_path = GPU / "gpu_tree.py"
    sys.path.insert(0, str(spec_path.parent))
    try:
        import gpu_tree
    finally:
        sys.path.remove(str(spec_path.parent))
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("/ignored/\n/carried/\n")
    (repo / "tracked.bin").write_bytes(b"t" * 1000)
    (repo / "loose.bin").write_bytes(b"u" * 200)          # untracked, not ignored: travels
    (repo / "ignored").mkdir()
    (repo / "ignored" / "big.bin").write_bytes(b"i" * 5000)  # ignored: stays
    (repo / "carried").mkdir()
    (repo / "carried" / "pack.bin").write_bytes(b"c" * 300)
    subprocess.run(["git", "-C", str(repo), "add", "tracked.bin", ".gitignore"], check=True)
    tree, carried = gpu_tree.tree_bytes(["carried"], root=repo)
    assert tree == 1000 + 200 + len("/ignored/\n/carried/\n")
    assert carried == 300
