"""`ferkit batch`: recognition over whole archives of photos and videos as a Ray Data pipeline.

    list inputs → units (a chunk of photos, or one video) → read (tasks) → recognize (a pool of actors, each with
    its models loaded once) → write (tasks, atomic per group of inputs) → OUT/faces, OUT/tracks, OUT/inputs

On one machine it starts a local Ray of its own; with an address it joins a cluster (the inputs and OUT must then
be on storage every node sees). The recognition is `ferkit predict`'s own Recognizer, so the results are the
same. Ray retries the work of a worker that dies, writes replace their own files, and a re-run skips what is done
(ferkit.batch.store).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ferkit import cluster
from ferkit.batch import store
from ferkit.batch.plan import list_inputs, units_of_work
from ferkit.batch.stages import RecognizeUnit, _input_row, build_recognizer, read_unit, write_groups
from ferkit.batch.tables import INPUT_SCHEMA, face_schema
from ferkit.errors import FerkitError

RETRIES = 3  # times Ray runs a unit again after its worker died; then the unit's inputs become error rows


@dataclass
class BatchOptions:
    inputs: list
    out: Path
    settings: dict  # recognition: model, detector, threshold, min_face, preprocess, tta, align, precision, ...
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 16
    progress: bool = True
    retry_errors: bool = False
    local_cpus: int | None = None  # size of the embedded Ray (default: the machine)
    extra: dict = field(default_factory=dict)


def recognition_settings(model="default", detector="retinaface", threshold=None, min_face=20, preprocess="none",
                         tta=None, align=True, backend="onnx", precision="auto", device="auto",
                         max_frames=None) -> dict:
    if Path(str(model)).exists():  # a checkpoint, run folder or .onnx file: workers may run in other folders
        model = Path(str(model)).absolute()
    return {"model": str(model), "detector": detector, "threshold": threshold, "min_face": min_face,
            "preprocess": preprocess, "tta": tta, "align": align, "backend": backend, "precision": precision,
            "device": device, "max_frames": max_frames}


def _check_settings(settings: dict) -> tuple:
    """Load the models once here, on the CPU, so that a wrong name is one line before any worker starts."""
    recognizer = build_recognizer(settings, "cpu", 1)
    face_schema(recognizer.labels)
    return recognizer.labels


def _pipeline(units, options: BatchOptions, labels, workers: int):
    import logging
    import warnings

    import ray.data

    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a failed unit is an error row, not a traceback
    with warnings.catch_warnings():  # Ray's own deprecated settings, read when the context is made
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # one bar, ours, counts inputs
    context.max_errored_blocks = -1  # a unit that kills its worker every time must not stop the others
    threads = cluster.threads_per_worker(options.cpus_per_worker)
    # Reads and writes take no CPU share (beside actors that hold every CPU, a share would never come free), so
    # their pools are capped: uncapped, Ray starts a new worker process (seconds of CPU) for every waiting unit.
    with warnings.catch_warnings():  # max_restarts has no named parameter yet in the pinned Ray 2.60
        warnings.simplefilter("ignore")
        return (ray.data.from_items(units, override_num_blocks=len(units))
                .map_batches(read_unit, batch_size=1, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=workers))
                .map_batches(RecognizeUnit, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
                             num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker or None,
                             fn_constructor_kwargs={"settings": options.settings, "threads": threads},
                             max_restarts=RETRIES, max_task_retries=RETRIES)  # Ray's default: forever
                .map_batches(write_groups, batch_size=None, batch_format="pyarrow", num_cpus=0,
                             compute=ray.data.TaskPoolStrategy(size=min(workers, 4)),
                             fn_kwargs={"out": str(Path(options.out).absolute()), "labels": list(labels)}))


def run_batch(options: BatchOptions) -> dict:
    """Run the job; return its summary (see summarize). Results are on disk as they come."""
    if options.cpus_per_worker < 0 or options.gpus_per_worker < 0 or (options.cpus_per_worker == 0
                                                                       and options.gpus_per_worker == 0):
        raise FerkitError("--cpus-per-worker and --gpus-per-worker must not be negative, and not both 0")
    inputs = list_inputs(options.inputs)
    labels = _check_settings(options.settings)
    out = Path(options.out)
    done = store.prepare(out, options.settings, options.retry_errors)
    pending = [i for i in inputs if i.path not in done]
    started = time.perf_counter()
    if pending:
        units = units_of_work(pending, options.batch_size)
        owned = not cluster.connected()  # a Ray this job starts or joins is this job's to shut down
        resources = cluster.connect(options.address, options.local_cpus)
        workers = cluster.worker_count(resources, options.workers, options.cpus_per_worker, options.gpus_per_worker)
        workers = min(workers, len(units))  # a worker with no unit would load its models for nothing
        print(f"ferkit batch: {len(pending)} input(s) to do ({len(inputs) - len(pending)} already done), "
              f"{workers} worker(s) on a Ray of {resources.get('CPU', 0):g} CPU(s)"
              f"{' and %g GPU(s)' % resources['GPU'] if resources.get('GPU') else ''}", file=sys.stderr)
        _run(units, options, labels, workers, len(pending), owned)
        _record_lost(out, pending, labels)
    else:
        print(f"ferkit batch: all {len(inputs)} input(s) already done in {out}", file=sys.stderr)
    return summarize(out, [i.path for i in inputs], time.perf_counter() - started)


def _run(units, options, labels, workers, total, owned: bool) -> None:
    with cluster.quiet_output() as stderr:
        try:
            _run_quietly(units, options, labels, workers, total, stderr)
        finally:
            if owned:  # here, so that what Ray prints as it stops (a stopped job's retries) stays quiet too
                cluster.shutdown()


def _run_quietly(units, options, labels, workers, total, stderr) -> None:
    bar = None
    if options.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="input", desc="batch", leave=False, file=stderr)
    try:
        for batch in _pipeline(units, options, labels, workers).iter_batches(batch_size=None):
            if bar:
                bar.update(batch.num_rows if hasattr(batch, "num_rows") else len(batch["source"]))
    except KeyboardInterrupt:
        raise FerkitError(f"stopped; what was done is in {options.out}: run the same command to resume") from None
    except Exception as exc:  # a Ray failure that is no input's fault: workers that cannot start, a lost cluster
        if isinstance(exc, FerkitError):
            raise
        text = str(exc).strip().splitlines()
        detail = next((line for line in reversed(text) if line.strip()), type(exc).__name__)
        raise FerkitError(f"the batch job failed ({type(exc).__name__}: {detail.strip()}); what was done is in "
                          f"{options.out}: run the same command to resume") from None
    finally:
        if bar:
            bar.close()


def _record_lost(out: Path, pending, labels) -> None:
    """Inputs of units that killed their worker on every retry: error rows, so that the tables account for
    every input and a re-run skips them (--retry-errors runs them again)."""
    table = store.read_table(out / "inputs")
    written = set(table.column("path").to_pylist()) if table is not None else set()
    lost = [i for i in pending if i.path not in written]
    if lost:
        message = (f"not recognised: its unit of work failed {RETRIES + 1} times (a worker that died, or an "
                   f"error; Ray's logs say which, under /tmp/ray/session_latest/logs)")
        rows = [_input_row(i.source, i.path, i.kind, "error", message) for i in lost]
        store.write_group(out, store.group_key([i.path for i in lost]), face_schema(labels).empty_table(), None,
                          pa.Table.from_pylist(rows, schema=INPUT_SCHEMA))


def summarize(out: Path, paths, seconds: float) -> dict:
    """Counts over this job's inputs, the errors, and each video's tracks."""
    inputs = store.read_table(out / "inputs")
    rows = [r for r in (inputs.to_pylist() if inputs is not None else []) if r["path"] in set(paths)]
    tracks = store.read_table(out / "tracks")
    track_rows = tracks.to_pylist() if tracks is not None else []
    return {"out": str(out), "inputs": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "errors": [r for r in rows if r["status"] == "error"], "faces": sum(r["faces"] for r in rows),
            "frames": sum(r["frames"] for r in rows if r["kind"] == "video"),
            "videos": [r for r in rows if r["kind"] == "video" and r["status"] == "ok"],
            "tracks": track_rows, "seconds": round(seconds, 3)}
