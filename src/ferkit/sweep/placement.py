"""A checked plan on Ray: each run a task with its CPUs and GPU share (`num_gpus=0.25`: four runs share a GPU; Ray
sets CUDA_VISIBLE_DEVICES for the task, and the training it starts inherits it), the phases in order, a later
phase's teachers chosen by PublicTest accuracy once the phase before it has ended.

OUT must be on storage that every node sees (a student reads its teachers' best.pt there), as must the data and
the configs, at the same paths.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from ferkit import cluster
from ferkit.errors import FerkitError
from ferkit.sweep.plan import Plan, RunSpec
from ferkit.sweep.run import Job, choose_teachers, finished_row, run_job

RETRIES = 2  # a task whose worker died (out of memory, a lost node) runs again, resuming from last.pt


def run_sweep(plan: Plan, data: Path, out: Path, address: str | None = None, local_cpus: int | None = None,
              say=print) -> dict[str, dict]:
    """Run every phase of the plan; return {run name: row} in the plan's order. `say` takes progress lines."""
    owned = not cluster.connected()  # a Ray this sweep starts or joins is this sweep's to shut down
    resources = cluster.connect(address, local_cpus)
    try:
        check_fits(plan)
    except FerkitError:
        if owned:
            cluster.shutdown()
        raise
    out.mkdir(parents=True, exist_ok=True)  # once the plan is known to fit: a refused one leaves nothing
    gpus = f" and {resources['GPU']:g} GPU(s)" if resources.get("GPU") else ""
    say(f"ferkit sweep: {len(plan.runs)} run(s) in {len(plan.phases)} phase(s) on a Ray of "
        f"{resources.get('CPU', 0):g} CPU(s){gpus}")
    with cluster.quiet_output() as stream:
        def progress(line: str) -> None:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", file=stream, flush=True)

        try:
            return _run_phases(plan, data, out, progress)
        finally:
            if owned:  # here, so that what Ray prints as it stops stays quiet too
                cluster.shutdown()


def check_fits(plan: Plan) -> None:
    """Every run fits on one node of the cluster; a task that never fits would wait for ever."""
    import ray

    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    most_cpus = max((node.get("CPU", 0) for node in nodes), default=0)
    most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    for run in plan.runs:
        if run.gpus > 0 and not most_gpus:
            raise FerkitError(f"run {run.name}: gpus {run.gpus:g} but the Ray cluster has no GPU")
        if run.gpus > most_gpus:
            raise FerkitError(f"run {run.name}: gpus {run.gpus:g} but no node of the Ray cluster has that many")
        if run.cpus > most_cpus:
            raise FerkitError(f"run {run.name}: cpus {run.cpus:g} but no node of the Ray cluster has more than "
                              f"{most_cpus:g}")
        if run.device and run.device.startswith("cuda") and not run.gpus:
            raise FerkitError(f"run {run.name}: device {run.device} needs a GPU share (gpus: 1, or 0.25, ...)")


def _run_phases(plan: Plan, data: Path, out: Path, progress) -> dict[str, dict]:
    import ray

    task = ray.remote(max_retries=RETRIES)(run_job)
    start, token = time.time(), uuid.uuid4().hex
    rows: dict[str, dict] = {}
    for index, phase in enumerate(plan.phases, 1):
        ends = [s for s in (plan.deadline_s, phase.ends_by_s) if s is not None]
        deadline = start + min(ends) if ends else None
        refs, waiting = {}, {}
        progress(f"phase {index}: {', '.join(f'{s.name} ({_share(s)})' for s in phase.runs)}")
        for spec in phase.runs:
            done = finished_row(out / "runs" / spec.name)
            if done is not None:
                rows[spec.name] = {**done, "skipped": True}
                progress(_finished_line(spec.name, rows[spec.name]))
                continue
            job, teachers = _job(spec, data, out, deadline, token, progress)
            if spec.teachers and not teachers:  # distilling from nothing would be another recipe than the plan's
                rows[spec.name] = {"status": "error", "error": f"none of its teachers {spec.teachers} has a best.pt"}
                progress(_finished_line(spec.name, rows[spec.name]))
                continue
            waiting[spec.name] = job.folder
            refs[task.options(num_cpus=spec.cpus, num_gpus=spec.gpus).remote(job.to_dict(), teachers)] = spec.name
        try:
            _wait(refs, waiting, token, rows, progress)
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref, force=True)  # kills the workers; their trainings die with them (last.pt stays)
            raise FerkitError(f"stopped; what was done is in {out}: run the same command to resume") from None
    return {spec.name: rows[spec.name] for spec in plan.runs}


def _job(spec: RunSpec, data: Path, out: Path, deadline, token: str, progress) -> tuple[Job, list[str]]:
    chosen = []
    if spec.teachers:
        chosen, ranked = choose_teachers(spec.teachers, spec.teachers_top, out / "runs")
        progress(f"{spec.name}: teachers {chosen} (the best by PublicTest accuracy of {ranked})")
    job = Job(spec.name, spec.config, str(data), str((out / "runs").absolute()), spec.sets,
              [str((out / "runs" / name / "best.pt").absolute()) for name in chosen], spec.threads, spec.device,
              deadline, token)
    return job, chosen


def _wait(refs: dict, waiting: dict, token: str, rows: dict, progress) -> None:
    import ray

    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
        for name, folder in list(waiting.items()):  # a run's task writes its attempt file as it starts
            if _started(folder, token):
                progress(f"{name}: started")
                del waiting[name]
        for ref in ready:
            name = refs[ref]
            try:
                row = ray.get(ref)
            except Exception as exc:  # the task itself failed (its worker died every time): an error row
                last = (str(exc).strip().splitlines() or [""])[-1]
                row = {"status": "error", "error": f"the task failed ({type(exc).__name__}: {last.strip()})"}
            rows[name] = row
            waiting.pop(name, None)
            progress(_finished_line(name, row))


def _started(folder: Path, token: str) -> bool:
    try:
        return (folder / "attempt").read_text() == token
    except OSError:
        return False


def _share(spec: RunSpec) -> str:
    return f"{spec.cpus:g} CPU" + (f", {spec.gpus:g} GPU" if spec.gpus else "")


def _finished_line(name: str, row: dict) -> str:
    if row.get("status") == "error":
        return f"{name}: failed: {row.get('error')}"
    if row.get("skipped"):
        return f"{name}: done in an earlier attempt (its row is kept)"
    public = row.get("PublicTest", {}).get("accuracy")
    note = " (stopped at the deadline)" if row.get("status") == "stopped" else ""
    return f"{name}: done in {row.get('seconds', 0):.0f} s{note}, PublicTest accuracy {public}"
