"""FER+ relabelling (fer2013new.csv[.gz]): 10 votes per FER2013 row, aligned by row position (not by file name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.data.faceset import FaceSet
from ferkit.data.fer2013 import read_bytes
from ferkit.errors import FerkitError
from ferkit.labels import FERPLUS_EMOTIONS, FERPLUS_VOTE_COLUMNS, USAGES


def find_ferplus(fer2013_path: str | Path) -> Path:
    folder = Path(fer2013_path).parent
    for name in ("fer2013new.csv.gz", "fer2013new.csv"):
        if (folder / name).is_file():
            return folder / name
    raise FerkitError(f"no fer2013new.csv(.gz) beside {fer2013_path}; pass its path with --ferplus")


def read_votes(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(votes N×10 int, usage N uint8) for every row of fer2013new.csv, in file order."""
    text = read_bytes(path).decode("utf-8", "replace")
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split(",")]
    missing = [c for c in ("Usage", *FERPLUS_VOTE_COLUMNS) if c not in header]
    if missing:
        raise FerkitError(f"{path}, line 1: missing column(s) {', '.join(missing)}")
    columns = [header.index(c) for c in FERPLUS_VOTE_COLUMNS]
    i_usage = header.index("Usage")
    votes, usage = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            votes.append([int(parts[c]) for c in columns])
            usage.append(USAGES.index(parts[i_usage].strip()))
        except (IndexError, ValueError):
            raise FerkitError(f"{path}, line {lineno}: malformed FER+ row") from None
    return np.asarray(votes, np.int64).reshape(-1, len(FERPLUS_VOTE_COLUMNS)), np.asarray(usage, np.uint8)


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Top-voted class per row (first in column order on a tie); -1 where unknown or NF tops it, or it has no votes."""
    top = votes.argmax(axis=1)
    return np.where((top < len(FERPLUS_EMOTIONS)) & (votes.max(axis=1) > 0), top, -1)


def load_ferplus(fer2013: FaceSet, ferplus_path: str | Path) -> FaceSet:
    """FER2013 images with FER+ majority labels (8 classes) and vote distributions; unknown/NF rows dropped."""
    votes, usage = read_votes(ferplus_path)
    if fer2013.rows is None or fer2013.rows.max(initial=-1) >= len(votes):
        raise FerkitError(f"{ferplus_path}: has {len(votes)} rows, fewer than the FER2013 file")
    votes, usage = votes[fer2013.rows], usage[fer2013.rows]
    if fer2013.usage is not None and not np.array_equal(usage, fer2013.usage):
        raise FerkitError(f"{ferplus_path}: Usage column disagrees with the FER2013 file; rows are misaligned")
    labels = majority_labels(votes)
    keep = np.flatnonzero(labels >= 0)
    emotion_votes = votes[:, : len(FERPLUS_EMOTIONS)].astype(np.float32)
    distribution = emotion_votes / np.maximum(emotion_votes.sum(axis=1, keepdims=True), 1)
    faces = FaceSet(images=fer2013.images, labels=labels, label_names=FERPLUS_EMOTIONS, usage=fer2013.usage,
                    rows=fer2013.rows, votes=distribution, info=dict(fer2013.info))
    faces = faces.subset(keep)
    faces.info["ferplus_dropped"] = int(len(labels) - len(keep))
    return faces


