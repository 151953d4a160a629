"""`ferkit sweep` on a real local Ray: a plan of tiny real trainings on real csv rows (two runs side by side with
half a CPU each, and one whose training fails), then a run that distils from the better of the two on PublicTest;
the summary's figures against best.pt scored here; a re-run that trains nothing; a run interrupted before its row
was written resumed with --resume; bad plans as one line and exit 2; every plan in experiments/gpu/plans checked.

One local Ray serves the module (it takes seconds to start); the sweeps run in-process through the CLI's main."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ferkit.cli import main

ray = pytest.importorskip("ray", reason="ferkit sweep needs ray: make setup installs it")

REPO = Path(__file__).resolve().parents[1]
PLANS = sorted((REPO / "experiments" / "gpu" / "plans").glob("*.yaml"))
TINY = ["subset=256", "val_subset=0", "epochs=1", "batch_size=64", "bf16=false", "teachers=[]"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def small_csv(fer2013_path, tmp_path_factory) -> Path:
    """900 real rows (pixels and labels) from the start of the file, as 600 Training, 150 PublicTest and 150
    PrivateTest rows: the first rows of the real file are all Training."""
    with gzip.open(fer2013_path, "rt") as handle:
        header = next(handle)
        rows = [next(handle).rsplit(",", 1)[0] for _ in range(900)]
    usages = ["Training"] * 600 + ["PublicTest"] * 150 + ["PrivateTest"] * 150
    path = tmp_path_factory.mktemp("data") / "fer2013.csv"
    path.write_text(header + "".join(f"{row},{usage}\n" for row, usage in zip(rows, usages)))
    return path


def write_plan(folder: Path, plan: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


# Half a CPU each: the two runs of a phase share this machine's two cores. `broken` fails as its training starts.
PLAN = {"cpus": 0.5, "phases": [
    {"runs": [{"name": "a", "config": "configs/seed_budget.yaml", "set": TINY + ["model=simple_cnn"]},
              {"name": "b", "config": "configs/seed_budget.yaml", "set": TINY + ["model=simple_cnn", "seed=1"]}]},
    {"runs": [{"name": "kd", "config": "configs/seed_budget.yaml", "teachers": ["a", "b"], "teachers_top": 1,
               "set": TINY + ["model=simple_cnn", "seed=2"]},
              {"name": "broken", "config": "configs/seed_budget.yaml",
               "set": TINY + ["model=simple_cnn", "init_from=/no/such/checkpoint.pt"]}]}]}


@pytest.fixture(scope="module")
def swept(local_ray, small_csv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    plan = write_plan(folder, PLAN)
    argv = ["sweep", str(plan), "--out", str(folder / "out"), "--data", str(small_csv)]
    return argv, main(argv), folder / "out"


def rescored(run: Path, data: Path) -> dict:
    """Accuracy of a run's best.pt on both test splits, plain and flipped, measured here."""
    from ferkit.classifier.checkpoint import load_checkpoint
    from ferkit.classifier.torch_inference import predict_proba
    from ferkit.data import load_dataset

    model = load_checkpoint(run / "best.pt").build_model()
    faces = load_dataset(data)
    scores = {}
    for split in ("PublicTest", "PrivateTest"):
        part = faces.split(split)
        for tta, suffix in (((), ""), (("flip",), "_flip")):
            probs = predict_proba(model, part.images, tta=tta, device="cpu")
            scores[split + suffix] = float(np.mean(probs.argmax(1) == part.labels))
    return scores


def val_acc(run: Path) -> float:
    from ferkit.classifier.checkpoint import load_checkpoint

    return float(load_checkpoint(run / "best.pt").info.metrics["val_acc"])


def test_a_plan_trains_on_ray_and_its_summary_has_both_test_splits(swept, small_csv):
    _, code, out = swept
    assert code == 1, "a failed run makes the exit code 1, after the others ran"
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["a", "b", "kd", "broken"]
    assert summary["broken"]["status"] == "error" and "exited" in summary["broken"]["error"]
    table = {row["run"]: row for row in csv.DictReader((out / "summary.csv").open())}
    for name in ("a", "b", "kd"):
        row = summary[name]
        assert row["status"] == "done" and row["epochs_run"] == 1 and row["best_epoch"] == 1
        if name == "kd":
            continue
        for key, accuracy in rescored(out / "runs" / name, small_csv).items():
            assert row[key]["accuracy"] == pytest.approx(accuracy, abs=1e-4), (name, key)
            assert float(table[name][key]) == pytest.approx(accuracy, abs=1e-4)
        assert row["PublicTest"]["accuracy"] == pytest.approx(val_acc(out / "runs" / name), abs=1e-4)


def test_the_second_phase_distils_from_the_better_run_on_publictest(swept):
    _, _, out = swept
    chosen = max(["a", "b"], key=lambda name: val_acc(out / "runs" / name))
    teacher = str(out.absolute() / "runs" / chosen / "best.pt")
    assert f"teachers={json.dumps([teacher])}" in (out / "runs" / "kd" / "command.txt").read_text()
    assert yaml.safe_load((out / "runs" / "kd" / "config.yaml").read_text())["teachers"] == [teacher]
    assert json.loads((out / "summary.json").read_text())["kd"]["teachers"] == [chosen]


def test_the_same_command_again_trains_nothing_and_resumes_an_unfinished_run(swept):
    argv, _, out = swept
    runs = out / "runs"
    before = {name: (runs / name / "last.pt").stat().st_mtime_ns for name in ("b", "kd")}
    (runs / "a" / "row.json").unlink()  # as if the sweep had stopped before a's row was written
    assert main(argv) == 1  # broken is tried again, and fails again
    assert {name: (runs / name / "last.pt").stat().st_mtime_ns for name in ("b", "kd")} == before
    commands = (runs / "a" / "command.txt").read_text().splitlines()
    assert len(commands) == 2 and commands[1].endswith("--resume")
    assert json.loads((runs / "a" / "row.json").read_text())["status"] == "done"
    assert json.loads((out / "summary.json").read_text())["broken"]["status"] == "error"


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def bad(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one_run(**extra) -> dict:
    return {"phases": [{"runs": [{"name": "a", "config": "configs/seed_budget.yaml", "set": TINY, **extra}]}]}


@pytest.mark.parametrize("case, plan, message", [
    ("missing", None, "no such plan file"),
    ("yaml", "phases: [runs: {", "not a readable YAML plan"),
    ("unknown key", {**one_run(), "gpu": 1}, "unknown key(s) gpu"),
    ("bad set", one_run(set=["epochs=zero"]), "run a: epochs must be int"),
    ("unknown config key", one_run(set=["learning_rate=0.1"]), "unknown config key(s): learning_rate"),
    ("teacher", {"phases": [{"runs": [{"name": "a", "config": "configs/seed_budget.yaml", "teachers": ["a"]}]}]},
     "teacher 'a' is not a run of an earlier phase"),
    ("duplicate", {"phases": [one_run()["phases"][0], one_run()["phases"][0]]}, "used twice"),
    ("no gpu", one_run(gpus=0.25), "gpus 0.25 but the Ray cluster has no GPU"),
    ("too many cpus", one_run(cpus=3), "cpus 3 but no node of the Ray cluster has more than 2"),
    ("data", {**one_run(), "data": "/no/such/fer2013.csv"}, "no such file or folder"),
])
def test_a_bad_plan_is_one_line_and_exit_2(case, plan, message, local_ray, small_csv, tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    if isinstance(plan, dict):
        write_plan(tmp_path, plan)
    elif plan is not None:
        bad(path, plan)
    argv = ["sweep", str(path), "--out", str(tmp_path / "out")] + ([] if case == "data" else ["--data",
                                                                                                str(small_csv)])
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("ferkit sweep: error:") and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_or_an_unreachable_address_is_one_line(small_csv, tmp_path, capsys):
    plan = write_plan(tmp_path, one_run())
    code, err = run_cli(["sweep", str(plan), "--out", str(bad(tmp_path / "file", "x")), "--data", str(small_csv)],
                        capsys)
    assert code == 2 and err == [f"ferkit sweep: error: --out {tmp_path / 'file'} is a file; a sweep needs a folder"]
    # In a process of its own: this module's local Ray would otherwise be the one it joins.
    with socket_closed_port() as port:
        result = subprocess.run([sys.executable, "-m", "ferkit", "sweep", str(plan), "--out", str(tmp_path / "o"),
                                 "--data", str(small_csv), "--address", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "cannot reach the Ray cluster" in lines[0], result.stderr


class socket_closed_port:
    """A loopback port that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None


@pytest.mark.parametrize("plan_path", PLANS, ids=[p.stem for p in PLANS])
def test_every_gpu_plan_passes_the_plan_check(plan_path):
    from ferkit.sweep.plan import load_plan

    plan = load_plan(plan_path)
    assert plan.runs and all(run.cpus == 1 and run.gpus == 0 and run.threads == 1 for run in plan.runs)
    assert all(Path(run.config).is_file() for run in plan.runs)
