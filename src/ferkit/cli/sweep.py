"""`ferkit sweep`: a plan of trainings as Ray tasks, each with its CPUs and GPU share (ferkit.sweep)."""

from __future__ import annotations

import sys
from pathlib import Path

from ferkit.errors import FerkitError


def add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a plan of trainings side by side on Ray (this machine or a cluster), then score them",
        description="Each run of PLAN.yaml is `ferkit train` in a Ray task with the CPUs and GPU share the plan "
                    "gives it (gpus: 0.25 lets four runs share a GPU); phases run in order, and a run may distil "
                    "from the best runs of earlier phases, chosen on PublicTest. Every run's best checkpoint is "
                    "scored on PublicTest and PrivateTest (plain and flip TTA) into DIR/summary.json and "
                    "DIR/summary.csv. The same command again resumes: finished runs are kept, interrupted ones "
                    "continue from their last checkpoint.")
    p.add_argument("plan", metavar="PLAN.yaml", help="the plan: phases of runs (see docs/scale.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="sweep folder: runs/NAME per run, the summary")
    p.add_argument("--data", metavar="PATH", help="FER2013 csv(.gz) or class folders (default: the plan's data:)")
    p.add_argument("--address", metavar="ADDR",
                   help="join a Ray cluster: auto (the one `ray start` made here), HOST:PORT, or ray://HOST:10001 "
                        "(default: start a local Ray of this sweep's own); DIR, the data and the configs must then "
                        "be at the same paths on every node")
    p.add_argument("--device", help="every run's training device: auto, cpu, cuda (default: the plan's, else the "
                                    "config's)")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    from ferkit.sweep.plan import check_data, load_plan

    plan = load_plan(args.plan, data=args.data, device=args.device)
    data = check_data(plan)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FerkitError(f"--out {out} is a file; a sweep needs a folder")
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise FerkitError(f"ferkit sweep needs {exc.name}: pip install 'ray[data]'") from None
    from ferkit.sweep.placement import run_sweep
    from ferkit.sweep.summary import format_table, write_summary

    try:
        rows = run_sweep(plan, data, out, address=args.address, say=lambda line: print(line, file=sys.stderr))
    except KeyboardInterrupt:  # while Ray starts (during the runs, run_sweep says the same)
        raise FerkitError(f"stopped; what was done is in {out}: run the same command to resume") from None
    write_summary(out, rows)
    print(format_table(rows))
    print(f"summary in {out}/summary.json and {out}/summary.csv; runs in {out}/runs")
    failed = {name: row for name, row in rows.items() if row.get("status") == "error"}
    if failed:
        print(f"{len(failed)} run(s) failed:", file=sys.stderr)
        for name, row in failed.items():
            print(f"  {name}: {row.get('error')} (log: {out}/runs/{name}/train.log)", file=sys.stderr)
        return 1
    return 0
