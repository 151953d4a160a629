"""Writing face records: JSON (the DESIGN.md schema) and CSV (one row per face, one column per label)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

BASE_COLUMNS = ["source", "frame", "time_s", "track", "x", "y", "w", "h", "emotion", "score"]


def write_json(records, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2))
    return path


def csv_rows(records, labels):
    for r in records:
        x, y, w, h = r["box"]
        row = {"source": r.get("source"), "frame": r.get("frame"), "time_s": r.get("time_s"),
               "track": r.get("track"), "x": x, "y": y, "w": w, "h": h, "emotion": r["emotion"],
               "score": r["score"]}
        row.update({label: r["probabilities"].get(label) for label in labels})
        yield {k: ("" if v is None else v) for k, v in row.items()}


class CsvWriter:
    """Streams records to CSV (for long videos); columns: BASE_COLUMNS then one per label."""

    def __init__(self, path, labels):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.labels = list(labels)
        self.handle = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=BASE_COLUMNS + self.labels)
        self.writer.writeheader()

    def write(self, records):
        for row in csv_rows(records, self.labels):
            self.writer.writerow(row)

    def close(self):
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_csv(records, path, labels) -> Path:
    with CsvWriter(path, labels) as writer:
        writer.write(records)
    return Path(path)
