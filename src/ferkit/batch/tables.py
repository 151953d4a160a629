"""The tables `ferkit batch` writes, as Arrow: faces (one row per face), inputs (one row per input) and tracks
(one row per face track of a video). Faces are gathered column by column in compact arrays, so that a video of
hours holds tens of bytes a face in memory, not a record's kilobyte."""

from __future__ import annotations

from array import array

import pyarrow as pa

# Faces: these columns, then one float32 column per label (its probability), then model and precision.
FACE_COLUMNS = (("source", pa.string()), ("frame", pa.int32()), ("time_s", pa.float64()), ("track", pa.int32()),
                ("face", pa.int16()), ("x", pa.int32()), ("y", pa.int32()), ("w", pa.int32()), ("h", pa.int32()),
                ("emotion", pa.string()), ("score", pa.float32()), ("raw_emotion", pa.string()))
INPUT_SCHEMA = pa.schema([("source", pa.string()), ("path", pa.string()), ("kind", pa.string()),
                          ("status", pa.string()), ("error", pa.string()), ("frames", pa.int64()),
                          ("faces", pa.int64()), ("duration_s", pa.float64()), ("truncated", pa.bool_()),
                          ("seconds", pa.float64()), ("worker", pa.string())])
RESERVED = {name for name, _ in FACE_COLUMNS} | {"model", "precision"}


def face_schema(labels) -> pa.Schema:
    clash = RESERVED.intersection(labels)
    if clash:  # a model whose class is called "source" would overwrite a column
        raise ValueError(f"label names {sorted(clash)} clash with the columns of the faces table")
    return pa.schema(list(FACE_COLUMNS) + [(label, pa.float32()) for label in labels]
                     + [("model", pa.string()), ("precision", pa.string())])


def track_schema(labels) -> pa.Schema:
    return pa.schema([("source", pa.string()), ("track", pa.int32()), ("first_frame", pa.int32()),
                      ("last_frame", pa.int32()), ("frames", pa.int32()), ("emotion", pa.string()),
                      ("score", pa.float32())]
                     + [(f"share_{label}", pa.float32()) for label in labels]
                     + [(f"mean_{label}", pa.float32()) for label in labels])


class FaceColumns:
    """Face records of one input, appended frame by frame and turned into one Arrow table."""

    def __init__(self, labels, model: str, precision: str):
        self.labels, self.model, self.precision = tuple(labels), model, precision
        self.schema = face_schema(self.labels)
        self.sources: list[str] = []
        self.ints = {name: array("i") for name in ("frame", "track", "face", "x", "y", "w", "h")}
        self.times = array("d")
        self.scores = array("f")
        self.probabilities = array("f")
        self.emotions: list[str] = []
        self.raw_emotions: list[str | None] = []
        self.missing = {"frame": [], "track": [], "time_s": []}  # rows where a photo has no such value

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, records) -> None:
        """The records of one image or frame (each with its `face` number, 1 up in reading order)."""
        for face, record in enumerate(records):
            row = len(self.scores)
            x, y, w, h = record["box"]
            number = record.get("face", face + 1)
            for name, value in (("frame", record.get("frame")), ("track", record.get("track")), ("face", number),
                                ("x", x), ("y", y), ("w", w), ("h", h)):
                if value is None:
                    self.missing[name].append(row)
                self.ints[name].append(-1 if value is None else int(value))
            time_s = record.get("time_s")
            if time_s is None:
                self.missing["time_s"].append(row)
            self.times.append(0.0 if time_s is None else float(time_s))
            self.sources.append(record["source"])
            self.emotions.append(record["emotion"])
            self.raw_emotions.append(record.get("raw_emotion"))
            self.scores.append(record["score"])
            self.probabilities.extend(record["probabilities"][label] for label in self.labels)

    def _column(self, name, values, kind):
        mask = None
        if self.missing.get(name):
            mask = [False] * len(values)
            for row in self.missing[name]:
                mask[row] = True
        return pa.array(values, kind, mask=None if mask is None else pa.array(mask))

    def table(self) -> pa.Table:
        n = len(self)
        columns = {"source": pa.array(self.sources, pa.string()),
                   "time_s": self._column("time_s", self.times, pa.float64()),
                   "emotion": pa.array(self.emotions, pa.string()), "score": pa.array(self.scores, pa.float32()),
                   "raw_emotion": pa.array(self.raw_emotions, pa.string())}
        for name, values in self.ints.items():
            columns[name] = self._column(name, values, dict(FACE_COLUMNS)[name])
        probs = pa.array(self.probabilities, pa.float32())
        k = len(self.labels)
        for i, label in enumerate(self.labels):
            columns[label] = probs.take(pa.array(range(i, n * k, k), pa.int64())) if n else pa.array([], pa.float32())
        columns["model"] = pa.array([self.model] * n, pa.string())
        columns["precision"] = pa.array([self.precision] * n, pa.string())
        return pa.table([columns[name] for name in self.schema.names], schema=self.schema)


def track_rows(tracks, emotion_counts, labels) -> list[dict]:
    """One video's track summaries (runtime.tracking.Track.summary) with the share of frames each expression led
    in (the smoothed label, as shown on the video)."""
    rows = []
    for track in tracks:
        counts = emotion_counts.get(track["track"], {})
        seen = max(sum(counts.values()), 1)
        row = {k: track[k] for k in ("track", "first_frame", "last_frame", "frames", "emotion", "score")}
        row.update({f"share_{label}": counts.get(label, 0) / seen for label in labels})
        row.update({f"mean_{label}": track["mean_probabilities"][label] for label in labels})
        rows.append(row)
    return rows


def to_ipc(table: pa.Table) -> bytes:
    """A table as Arrow IPC bytes: how one input's faces travel from a recognition worker to the writer."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
