"""A sweep's results: OUT/summary.json (every run's row), OUT/summary.csv and the printed table.

PublicTest is the split that runs and teachers are chosen on; PrivateTest is reported beside it and chosen on
never.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ferkit.files import write_atomically

COLUMNS = ("run", "status", "parameters", "best_epoch", "PublicTest", "PublicTest_flip", "PrivateTest",
           "PrivateTest_flip", "wall_s", "teachers", "error")
HEADINGS = ("run", "status", "parameters", "best epoch", "PublicTest", "flip", "PrivateTest", "flip", "wall s")


def table_rows(rows: dict[str, dict]) -> list[dict]:
    """One flat row per run, accuracies as plain numbers, in the plan's order."""
    flat = []
    for name, row in rows.items():
        item = {"run": name, "status": row.get("status", ""), "parameters": row.get("parameters"),
                "best_epoch": row.get("best_epoch"), "wall_s": row.get("wall_s"),
                "teachers": " ".join(row.get("teachers") or []), "error": row.get("error", "")}
        for key in COLUMNS[4:8]:
            item[key] = (row.get(key) or {}).get("accuracy")
        flat.append(item)
    return flat


def write_summary(out: Path, rows: dict[str, dict]) -> None:
    write_atomically(out / "summary.json", json.dumps(rows, indent=1).encode())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(rows))
    write_atomically(out / "summary.csv", buffer.getvalue().encode())


def format_table(rows: dict[str, dict]) -> str:
    def cell(value, key):
        if value is None or value == "":
            return "-"
        if key in COLUMNS[4:8]:
            return f"{value:.4f}"
        if key == "parameters":
            return f"{value:,}"
        return f"{value:g}" if isinstance(value, float) else str(value)

    keys = COLUMNS[:9]
    body = [[cell(item[key], key) for key in keys] for item in table_rows(rows)]
    widths = [max(len(text) for text in column) for column in zip(HEADINGS, *body)]
    lines = ["  ".join(text.ljust(width) if i < 2 else text.rjust(width) for i, (text, width)
                       in enumerate(zip(line, widths))) for line in [list(HEADINGS), *body]]
    return "\n".join(lines)
