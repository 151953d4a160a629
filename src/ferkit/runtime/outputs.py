"""Writing face records (ferkit.records): JSON, and CSV with one row per face and one column per label."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ferkit.files import write_atomically
from ferkit.records import TABLE_COLUMNS, table_row


def write_json(records, path) -> Path:
    return write_atomically(path, json.dumps(records, indent=2))


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
    """All records at once, written whole or not at all (CsvWriter streams a video's rows as they come)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*TABLE_COLUMNS, *labels])
    writer.writeheader()
    writer.writerows(table_row(record, labels) for record in records)
    return write_atomically(path, buffer.getvalue())
