"""The output folder of `ferkit batch`, and what makes a job resumable and exact:

    OUT/job.json                  the recognition settings; a re-run with other settings is refused
    OUT/faces/part-KEY.parquet    faces of a group of inputs       ┐ written first,
    OUT/tracks/part-KEY.parquet   face tracks of the group's videos ┘ each atomically
    OUT/inputs/part-KEY.parquet   one row per input of the group: written last, it marks the group done

A group's KEY is a hash of its inputs, so a retried write (a worker killed and its task run again) replaces its
own files instead of adding rows, and a re-run skips the inputs already in OUT/inputs. Files a stopped job left
without their inputs part are removed before a re-run. Each folder is a Parquet dataset:
`pandas.read_parquet("OUT/faces")`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ferkit.errors import FerkitError
from ferkit.files import write_atomically

TABLES = ("faces", "tracks", "inputs")


def group_key(sources) -> str:
    return hashlib.sha1("\n".join(sorted(sources)).encode()).hexdigest()[:20]


def write_table(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_atomically(path, sink.getvalue().to_pybytes())


def write_group(out: Path, key: str, faces: pa.Table, tracks: pa.Table | None, inputs: pa.Table) -> None:
    name = f"part-{key}.parquet"
    if faces.num_rows:
        write_table(out / "faces" / name, faces)
    if tracks is not None and tracks.num_rows:
        write_table(out / "tracks" / name, tracks)
    write_table(out / "inputs" / name, inputs)  # last: the group is done


def read_table(folder: Path) -> pa.Table | None:
    files = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def prepare(out: Path, settings: dict, retry_errors: bool = False) -> set[str]:
    """Make OUT ready for a run with these settings; return the absolute paths of the inputs already done."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FerkitError(f"{out}: exists and is not a folder")
    job = out / "job.json"
    if job.exists():
        try:
            before = json.loads(job.read_text())["settings"]
        except (ValueError, KeyError, TypeError):
            raise FerkitError(f"{job}: not a ferkit batch job file; give another --out") from None
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            what = ", ".join(f"{k} {before.get(k)!r} → {settings.get(k)!r}" for k in changed)
            raise FerkitError(f"{out} holds results made with other settings ({what}); give another --out, "
                              "or the same settings to resume")
    elif out.exists() and any(out.iterdir()):
        raise FerkitError(f"{out}: not empty and not a ferkit batch output; give a new or empty folder")
    write_atomically(job, json.dumps({"settings": settings}, indent=2) + "\n")
    for table in TABLES:
        (out / table).mkdir(parents=True, exist_ok=True)
        for tmp in (out / table).glob(".part-*.tmp"):  # a write that a kill interrupted
            tmp.unlink(missing_ok=True)
    done_keys = {p.name for p in (out / "inputs").glob("part-*.parquet")}
    for table in ("faces", "tracks"):
        for part in (out / table).glob("part-*.parquet"):
            if part.name not in done_keys:  # its group never finished: it will be done again
                part.unlink()
    done = set()
    for part in sorted((out / "inputs").glob("part-*.parquet")):
        rows = pq.read_table(part)
        if retry_errors and "error" in rows.column("status").to_pylist():
            keep = [s == "ok" for s in rows.column("status").to_pylist()]
            rows = rows.filter(pa.array(keep))
            write_table(part, rows)  # failed inputs had no faces or tracks: only their rows go
        done.update(rows.column("path").to_pylist())
    return done
