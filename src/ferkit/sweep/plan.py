"""A sweep's plan: load it and check all of it before anything trains.

    data: ../shared/data/fer2013/fer2013.csv.gz   # optional; --data overrides it
    deadline_s: 470          # optional: runs still training this long after the start are stopped (best.pt stays)
    cpus: 1                  # optional defaults for every run: CPUs, GPU share (0.25: four runs share one GPU),
    gpus: 0                  # torch threads (default: the CPUs, at least 1) and device (default: train's own)
    threads: 1
    phases:                  # in order; the runs of a phase train at once
      - runs:
        - {name: a, config: configs/seed_budget.yaml, set: [model=simple_cnn, epochs=30], gpus: 0.25}
      - ends_by_s: 400       # optional, per phase: a deadline of its own, counted from the start
        runs:
        - {name: kd, config: configs/fast_r1.yaml, teachers: [a], teachers_top: 1}

A run distils from the `teachers_top` best of `teachers` (earlier phases' runs) by PublicTest accuracy. A relative
config path is looked up from the current folder, then from the plan's folder and each folder above it (so that
experiments/gpu/plans/*.yaml find configs/). `bring_back` and `bring_weights` are experiments/gpu/gpu_sweep.py's and
are accepted here without effect. No Ray here: ferkit.sweep.placement runs a checked plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ferkit.errors import FerkitError
from ferkit.train.config import TrainConfig

PLAN_KEYS = {"data", "deadline_s", "cpus", "gpus", "threads", "device", "phases", "bring_back", "bring_weights"}
PHASE_KEYS = {"runs", "ends_by_s"}
RUN_KEYS = {"name", "config", "set", "teachers", "teachers_top", "cpus", "gpus", "threads", "device"}
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a folder name under OUT/runs on any file system


@dataclass
class RunSpec:
    name: str
    config: str                  # absolute path of its config file
    sets: list[str] = field(default_factory=list)
    teachers: list[str] = field(default_factory=list)  # names of earlier phases' runs
    teachers_top: int = 0        # how many of them, best by PublicTest first (0: all)
    cpus: float = 1.0
    gpus: float = 0.0
    threads: int = 1
    device: str | None = None
    labels: str = "fer2013"      # the label set of its config: which scoring data it needs


@dataclass
class Phase:
    runs: list[RunSpec]
    ends_by_s: float | None = None


@dataclass
class Plan:
    path: Path
    phases: list[Phase]
    data: str | None = None
    deadline_s: float | None = None

    @property
    def runs(self) -> list[RunSpec]:
        return [run for phase in self.phases for run in phase.runs]


def load_plan(path: str | Path, data: str | None = None, device: str | None = None) -> Plan:
    """Read and check a plan; `data` and `device` (the command line's) replace the plan's own. Raises FerkitError
    naming the first problem."""
    path = Path(path)
    if not path.is_file():
        raise FerkitError(f"{path}: no such plan file")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FerkitError(f"{path}: not a readable YAML plan ({first})") from None
    if not isinstance(raw, dict):
        raise FerkitError(f"{path}: a plan is a mapping with a `phases` list")
    _no_unknown(raw, PLAN_KEYS, f"{path}")
    defaults = {"cpus": raw.get("cpus", 1.0), "gpus": raw.get("gpus", 0.0), "threads": raw.get("threads"),
                "device": raw.get("device"), "forced_device": device}
    phases_raw = raw.get("phases")
    if not isinstance(phases_raw, list) or not phases_raw:
        raise FerkitError(f"{path}: `phases` must be a non-empty list of phases, each with `runs`")
    deadline = _number(raw.get("deadline_s"), f"{path}: deadline_s", positive=True)
    seen: set[str] = set()  # earlier phases' runs: the teachers a run may name
    taken: set[str] = set()
    phases = []
    for index, phase in enumerate(phases_raw, 1):
        where = f"{path}: phase {index}"
        if not isinstance(phase, dict) or not isinstance(phase.get("runs"), list) or not phase["runs"]:
            raise FerkitError(f"{where}: a phase is a mapping with a non-empty `runs` list")
        _no_unknown(phase, PHASE_KEYS, where)
        runs = [_run(item, path, defaults, seen, taken, where) for item in phase["runs"]]
        seen.update(run.name for run in runs)
        phases.append(Phase(runs, _number(phase.get("ends_by_s"), f"{where}: ends_by_s", positive=True)))
    plan = Plan(path, phases, data if data is not None else raw.get("data"), deadline)
    for name in raw.get("bring_back") or []:
        if name not in seen:
            raise FerkitError(f"{path}: bring_back names {name!r}, which is no run of the plan")
    return plan


def check_data(plan: Plan) -> Path:
    """The plan's data file or folder, which must exist here (on a cluster: at the same path on every node)."""
    if not plan.data:
        raise FerkitError(f"{plan.path}: no data: give --data PATH or a `data:` line in the plan")
    data = Path(str(plan.data)).expanduser()
    if not data.exists():
        raise FerkitError(f"data {plan.data}: no such file or folder")
    return data.absolute()


def _run(item, plan_path: Path, defaults: dict, earlier: set[str], taken: set[str], where: str) -> RunSpec:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise FerkitError(f"{where}: a run is a mapping with a `name`, got {item!r}")
    name = item["name"]
    where = f"{where}, run {name}"
    _no_unknown(item, RUN_KEYS, where)
    if not NAME.fullmatch(name):
        raise FerkitError(f"{where}: a run name is letters, digits, '_', '-' and '.', as it names a folder")
    if name in taken:
        raise FerkitError(f"{where}: the name {name!r} is used twice; run names must be unique")
    taken.add(name)
    sets = item.get("set") or []
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise FerkitError(f"{where}: `set` must be a list of key=value strings")
    teachers = item.get("teachers") or []
    if not isinstance(teachers, list):
        raise FerkitError(f"{where}: `teachers` must be a list of earlier runs' names")
    for teacher in teachers:
        if teacher not in earlier:
            raise FerkitError(f"{where}: teacher {teacher!r} is not a run of an earlier phase")
    top = item.get("teachers_top", 0)
    if not isinstance(top, int) or isinstance(top, bool) or top < 0 or (top and not teachers):
        raise FerkitError(f"{where}: teachers_top must be a whole number >= 0, with `teachers` to choose from")
    cpus = _number(item.get("cpus", defaults["cpus"]), f"{where}: cpus")
    gpus = _number(item.get("gpus", defaults["gpus"]), f"{where}: gpus")
    if cpus < 0 or gpus < 0 or (cpus == 0 and gpus == 0):
        raise FerkitError(f"{where}: cpus and gpus must not be negative, and not both 0")
    if gpus > 1 and gpus != int(gpus):
        raise FerkitError(f"{where}: gpus above 1 must be a whole number (Ray's rule), got {gpus:g}")
    threads = item.get("threads", defaults["threads"])
    threads = max(1, int(cpus)) if threads is None else threads
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise FerkitError(f"{where}: threads must be a whole number >= 1, got {threads!r}")
    device = defaults["forced_device"] or item.get("device", defaults["device"])
    config_path = _find_config(item.get("config"), plan_path, where)
    config = TrainConfig.from_yaml(config_path)
    try:
        config = config.override(list(sets) + ([f"device={device}"] if device else [])).validate()
    except FerkitError as exc:
        raise FerkitError(f"{where}: {exc}") from None
    return RunSpec(name, str(config_path), list(sets), list(teachers), top, cpus, gpus, threads,
                   str(device) if device else None, config.labels)


def _find_config(config, plan_path: Path, where: str) -> Path:
    if not isinstance(config, str) or not config:
        raise FerkitError(f"{where}: `config` must name a training config file")
    given = Path(config).expanduser()
    places = [given] if given.is_absolute() else [Path.cwd() / given] + [
        folder / given for folder in plan_path.absolute().parents]
    for place in places:
        if place.is_file():
            return place.resolve()
    raise FerkitError(f"{where}: config {config}: not found here nor beside the plan")


def _no_unknown(mapping: dict, allowed: set[str], where: str) -> None:
    unknown = set(map(str, mapping)) - allowed
    if unknown:
        raise FerkitError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected some of "
                          f"{', '.join(sorted(allowed))}")


def _number(value, where: str, positive: bool = False) -> float | None:
    if value is None and positive:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and value <= 0):
        raise FerkitError(f"{where} must be a {'positive ' if positive else ''}number, got {value!r}")
    return float(value)
