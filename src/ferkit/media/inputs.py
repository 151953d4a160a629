"""Expanding command-line inputs (files, folders, glob patterns) into a list of image paths."""

from __future__ import annotations

import glob
from pathlib import Path

from ferkit.media.images import IMAGE_SUFFIXES


def expand_inputs(inputs) -> list[Path]:
    """Folders give their image files (recursively, sorted); patterns are globbed; other paths pass through
    unchanged so that a missing or non-image file is reported by whoever reads it."""
    paths: list[Path] = []
    for item in inputs:
        item = str(item)
        if any(ch in item for ch in "*?[") and not Path(item).exists():
            matches = sorted(glob.glob(item, recursive=True))
            paths.extend(Path(m) for m in matches if Path(m).suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                paths.append(Path(item))  # reported later as "no such file"
        elif Path(item).is_dir():
            paths.extend(sorted(p for p in Path(item).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(Path(item))
    return paths
