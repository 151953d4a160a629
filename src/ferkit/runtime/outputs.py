"""Writing face records (ferkit.records): JSON, and CSV with one row per face and one column per label."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ferkit.records import TABLE_COLUMNS, table_row


def write_json(records, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2))
    return path


class CsvWriter:
    """Streams records to CSV (for long videos); columns: TABLE_COLUMNS then one per label."""

    def __init__(self, path, labels):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.labels = list(labels)
        self.handle = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=[*TABLE_COLUMNS, *self.labels])
        self.writer.writeheader()

    def write(self, records):
        for record in records:
            self.writer.writerow(table_row(record, self.labels))

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
