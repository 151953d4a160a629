"""The stages of the `ferkit batch` pipeline, as Ray Data runs them (see ferkit.batch.job):

    read       (task)   a unit's photos read as bytes; a video passes through (its worker decodes it on a thread
                        of its own, frames in order)
    recognize  (actor)  decode → detect → align → classify with one long-lived Recognizer per worker: the same
                        code as `ferkit predict` (Recognizer.predict_batch for photos, process_video for videos)
    write      (task)   each group of inputs' faces, tracks and input rows, atomically (ferkit.batch.store)

Rows between recognize and write are one per input, its faces and tracks as Arrow IPC bytes, so that any batch
the writer gets holds whole inputs. Bad inputs become error rows here; nothing raises out of a stage for them.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from ferkit.batch import store
from ferkit.batch.tables import INPUT_SCHEMA, FaceColumns, face_schema, from_ipc, to_ipc, track_rows, track_schema
from ferkit.errors import FerkitError


def read_unit(batch: dict) -> dict:
    """Read a unit's photos as bytes (None and an error message for those that cannot be read). The worker
    decodes them: a JPEG travels in a tenth of the bytes of its pixels."""
    from ferkit.files import check_input_file
    from ferkit.media.images import MAX_IMAGE_BYTES

    contents, errors = [], []
    for kind, paths in zip(batch["kind"], batch["paths"]):
        unit_contents, unit_errors = [], []
        for path in paths if kind == "image" else []:
            try:
                unit_contents.append(check_input_file(path, MAX_IMAGE_BYTES, "image").read_bytes())
                unit_errors.append(None)
            except (FerkitError, OSError) as exc:
                unit_contents.append(None)
                unit_errors.append(_message(exc, path) if isinstance(exc, FerkitError)
                                   else f"cannot read ({exc.strerror or exc})")
        contents.append(unit_contents)
        errors.append(unit_errors)
    return {**batch, "contents": _objects(contents), "errors": _objects(errors)}


def _message(exc: Exception, path: str) -> str:
    """The error without the file's name in front: the source column holds it."""
    text = str(exc)
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


def _objects(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _input_row(source, path, kind, status="ok", error=None, frames=0, faces=0, duration_s=None,
               truncated=False, seconds=0.0, worker=None) -> dict:
    return {"source": source, "path": path, "kind": kind, "status": status, "error": error, "frames": frames,
            "faces": faces, "duration_s": duration_s, "truncated": truncated, "seconds": round(seconds, 4),
            "worker": worker}


def _worker_name() -> str:
    """Which node and process recognised an input: its Ray node's address and id, and the process id."""
    import os

    import ray

    context = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}/{os.getpid()}"


def build_recognizer(settings: dict, device: str, threads: int | None):
    """The Recognizer that a job's settings (ferkit.batch.job.recognition_settings) describe."""
    from ferkit.runtime.recognizer import Recognizer

    return Recognizer(settings["model"], detector=settings["detector"], threshold=settings["threshold"],
                      min_face=settings["min_face"], preprocess=settings["preprocess"], tta=settings["tta"],
                      align=settings["align"], backend=settings["backend"], precision=settings["precision"],
                      device=device, threads=threads)


class RecognizeUnit:
    """A recognition worker: loads its models once, then takes units one after another."""

    def __init__(self, settings: dict, threads: int | None = None):
        self.settings = settings
        self.recognizer = build_recognizer(settings, settings["device"], threads)
        self.labels = self.recognizer.labels
        self.precision = getattr(self.recognizer.classifier, "precision", "fp32")
        self.empty_tracks = to_ipc(track_schema(self.labels).empty_table())
        self.worker = _worker_name()

    def _faces(self) -> FaceColumns:
        return FaceColumns(self.labels, self.settings["model"], self.precision)

    def __call__(self, batch: dict) -> dict:
        rows, faces, tracks = [], [], []
        for unit in range(len(batch["unit"])):
            sources, paths = list(batch["sources"][unit]), list(batch["paths"][unit])
            if batch["kind"][unit] == "video":
                done = [self._video(sources[0], paths[0])]
            else:
                done = self._images(sources, paths, batch["contents"][unit], list(batch["errors"][unit]))
            for row, face_bytes, track_bytes in done:
                rows.append(row)
                faces.append(face_bytes)
                tracks.append(track_bytes)
        for row in rows:
            row["worker"] = self.worker
        table = pa.Table.from_pylist(rows, schema=INPUT_SCHEMA)
        return table.append_column("faces_ipc", pa.array(faces, pa.binary())).append_column(
            "tracks_ipc", pa.array(tracks, pa.binary()))

    def _images(self, sources, paths, contents, errors):
        from ferkit.media.images import decode_image

        started = time.perf_counter()
        pixels = [None] * len(paths)
        for i, data in enumerate(contents):
            if errors[i] is None:
                try:
                    pixels[i] = decode_image(data, sources[i])
                except FerkitError as exc:
                    errors[i] = _message(exc, sources[i])
        readable = [i for i, p in enumerate(pixels) if p is not None]
        try:
            results = self.recognizer.predict_batch([pixels[i] for i in readable],
                                                    sources=[sources[i] for i in readable])
        except FerkitError:  # one odd image spoils the batch call: take them one by one to name it
            results = []
            for i in readable:
                try:
                    results.append(self.recognizer.predict(pixels[i], source=sources[i]))
                except FerkitError as exc:
                    errors[i] = _message(exc, sources[i])
                    results.append([])
        per_image = (time.perf_counter() - started) / max(len(readable), 1)
        by_index = dict(zip(readable, results))
        out = []
        for i, (source, path) in enumerate(zip(sources, paths)):
            columns = self._faces()
            if errors[i] is not None:
                out.append((_input_row(source, path, "image", "error", errors[i]), to_ipc(columns.table()),
                            self.empty_tracks))
                continue
            columns.add(by_index.get(i, []))
            row = _input_row(source, path, "image", frames=1, faces=len(columns), seconds=per_image)
            out.append((row, to_ipc(columns.table()), self.empty_tracks))
        return out

    def _video(self, source, path):
        from ferkit.runtime.video_recognition import process_video

        started = time.perf_counter()
        columns = self._faces()
        shown = defaultdict(Counter)  # track → how many frames each smoothed label led

        def collect(index, records):
            for record in records:
                record["source"] = source
                shown[record["track"]][record["emotion"]] += 1
            columns.add(records)

        try:
            result = process_video(self.recognizer, path, max_frames=self.settings["max_frames"], progress=False,
                                   on_frame=collect, keep_records=False, workers=1)  # Ray places the work
        except FerkitError as exc:
            return (_input_row(source, path, "video", "error", _message(exc, path)), to_ipc(self._faces().table()),
                    self.empty_tracks)
        rows = track_rows(result["tracks"], shown, self.labels)
        for row in rows:
            row["source"] = source
        tracks = pa.Table.from_pylist(rows, schema=track_schema(self.labels))
        duration = result["frames"] / result["fps"] if result["fps"] else None
        row = _input_row(source, path, "video", frames=result["frames"], faces=len(columns),
                         duration_s=None if duration is None else round(duration, 3),
                         truncated=bool(result["truncated"]) and self.settings["max_frames"] is None,
                         seconds=time.perf_counter() - started)
        return row, to_ipc(columns.table()), to_ipc(tracks)


def write_groups(batch: pa.Table, out: str, labels) -> pa.Table:
    """Write the batch's inputs as one group (see ferkit.batch.store); pass their input rows on."""
    out = Path(out)
    inputs = batch.select(INPUT_SCHEMA.names).cast(INPUT_SCHEMA)
    faces = [from_ipc(b) for b in batch.column("faces_ipc").to_pylist()]
    tracks = [from_ipc(b) for b in batch.column("tracks_ipc").to_pylist()]
    empty_faces = face_schema(labels).empty_table()
    store.write_group(out, store.group_key(inputs.column("path").to_pylist()),
                      pa.concat_tables(faces) if faces else empty_faces,
                      pa.concat_tables(tracks) if tracks else None, inputs)
    return inputs.select(["source", "kind", "status", "faces", "frames"])
