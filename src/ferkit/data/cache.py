"""A uint8 cache of parsed data, keyed by the source file's checksum, so a second load takes well under a second."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ferkit.files import cache_dir, file_sha256


def cache_path(kind: str, source: str | os.PathLike, variant: str = "") -> Path:
    key = file_sha256(source)[:20]
    suffix = f"-{variant}" if variant else ""
    return cache_dir() / f"{kind}-{key}{suffix}.npz"


def load(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # missing or damaged: the caller parses the source again


def save(path: Path, arrays: dict) -> None:
    """Write atomically: a half-written cache must never be read back as data."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home is no reason to fail a load
