"""FER+ relabelling (fer2013new.csv[.gz]): 10 votes per FER2013 row, aligned by row position (not by file name).

Two ways to turn votes into one test label:
- ``plurality`` (ours, the default): every face whose top vote is an emotion, ties to the first column. It keeps
  nearly all faces, the ambiguous ones too.
- ``strict``: the FER+ authors' "majority" test protocol (Barsoum et al. 2016; the ``majority`` mode that
  microsoft/FERPlus applies to its validation and test sets). Single votes are dropped as outliers, and a face is
  kept only where one emotion holds more than half of the votes left. Published FER+ accuracies use this set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.data.faceset import FaceSet
from ferkit.data.fer2013 import read_bytes
from ferkit.errors import FerkitError
from ferkit.labels import FERPLUS_EMOTIONS, FERPLUS_TESTS, FERPLUS_VOTE_COLUMNS, USAGES


def find_ferplus(fer2013_path: str | Path) -> Path:
    folder = Path(fer2013_path).parent
    for name in ("fer2013new.csv.gz", "fer2013new.csv"):
        if (folder / name).is_file():
            return folder / name
    raise FerkitError(f"no fer2013new.csv(.gz) beside {fer2013_path}: FER+ labels need the FER+ votes file there")


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
    """The plurality label: top-voted class per row (first in column order on a tie); -1 where unknown or NF tops
    it, or it has no votes."""
    top = votes.argmax(axis=1)
    return np.where((top < len(FERPLUS_EMOTIONS)) & (votes.max(axis=1) > 0), top, -1)


def strict_majority_labels(votes: np.ndarray) -> np.ndarray:
    """The FER+ authors' majority label: after dropping single votes, the class holding more than half of the
    remaining votes; -1 where no class does, or where unknown or NF does."""
    kept = np.where(votes > 1, votes, 0)
    top = kept.argmax(axis=1)
    strict = kept.max(axis=1) * 2 > kept.sum(axis=1)  # also false when no votes are left
    return np.where(strict & (top < len(FERPLUS_EMOTIONS)), top, -1)


def aligned_votes(fer2013: FaceSet, ferplus_path: str | Path) -> np.ndarray:
    """The FER+ vote rows (N×10 int) of the FER2013 faces given, aligned by row position; refuses a file that is
    too short or whose Usage column disagrees (misaligned rows)."""
    votes, usage = read_votes(ferplus_path)
    if fer2013.rows is None or fer2013.rows.max(initial=-1) >= len(votes):
        raise FerkitError(f"{ferplus_path}: has {len(votes)} rows, fewer than the FER2013 file")
    if fer2013.usage is not None and not np.array_equal(usage[fer2013.rows], fer2013.usage):
        raise FerkitError(f"{ferplus_path}: Usage column disagrees with the FER2013 file; rows are misaligned")
    return votes[fer2013.rows]


def load_ferplus(fer2013: FaceSet, ferplus_path: str | Path, test: str = "plurality") -> FaceSet:
    """FER2013 images with FER+ labels (8 classes) and vote distributions; rows without a label dropped.

    test: how labels are drawn from votes, "plurality" or "strict" (see the module docstring)."""
    if test not in FERPLUS_TESTS:
        raise FerkitError(f"unknown FER+ test protocol {test!r}; expected {' or '.join(FERPLUS_TESTS)}")
    votes = aligned_votes(fer2013, ferplus_path)
    labels = strict_majority_labels(votes) if test == "strict" else majority_labels(votes)
    keep = np.flatnonzero(labels >= 0)
    emotion_votes = votes[:, : len(FERPLUS_EMOTIONS)].astype(np.float32)
    distribution = emotion_votes / np.maximum(emotion_votes.sum(axis=1, keepdims=True), 1)
    faces = FaceSet(images=fer2013.images, labels=labels, label_names=FERPLUS_EMOTIONS, usage=fer2013.usage,
                    rows=fer2013.rows, votes=distribution, info=dict(fer2013.info))
    faces = faces.subset(keep)
    faces.info["ferplus_dropped"] = int(len(labels) - len(keep))
    faces.info["ferplus_test"] = test
    return faces


def fer2013_vote_targets(fer2013: FaceSet, ferplus_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The FER+ votes of each FER2013 face as a distribution over the FER2013 label set's classes (float32 N×C),
    and which faces have any such vote (bool N). Votes for contempt (no FER2013 class), unknown and NF are dropped;
    a face with no vote left is marked False, so that it keeps its own label."""
    if fer2013.rows is None:
        raise FerkitError("FER+ votes need FER2013 csv rows (a folder data set has none)")
    missing = [name for name in fer2013.label_names if name not in FERPLUS_EMOTIONS]
    if missing:
        raise FerkitError(f"FER+ has no votes for {', '.join(missing)}")
    columns = [FERPLUS_EMOTIONS.index(name) for name in fer2013.label_names]
    counts = aligned_votes(fer2013, ferplus_path)[:, columns].astype(np.float32)
    total = counts.sum(axis=1, keepdims=True)
    return counts / np.maximum(total, 1), total[:, 0] > 0


