"""Reading and writing the user's files safely: inputs must be regular files of a bounded size (never a FIFO that
hangs, a device that never ends, or a file too big to hold), and outputs appear whole or not at all."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from ferkit.errors import FerkitError


def check_input_file(path: str | Path, max_bytes: int, what: str = "file") -> Path:
    """The path, if it is a regular file of at most max_bytes; else a FerkitError saying why not."""
    path = Path(path)
    if not path.exists():
        raise FerkitError(f"{path}: no such file")
    if path.is_dir():
        raise FerkitError(f"{path}: is a folder, not a {what}")
    if not path.is_file():
        raise FerkitError(f"{path}: not a regular file (a device, pipe or socket cannot be read as a {what})")
    size = path.stat().st_size
    if size > max_bytes:
        raise FerkitError(f"{path}: {size / 2**20:,.0f} MiB is over the limit of {max_bytes / 2**20:,.0f} MiB "
                          f"for a {what}")
    return path


def write_atomically(path: str | Path, data: bytes | str) -> Path:
    """Write the whole file or nothing: a full disk or a kill leaves no partial file (and no temporary one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # its folder is not there or not a folder: nothing was written
            pass
        raise FerkitError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def cache_dir() -> Path:
    """Where ferkit keeps what it can make again (parsed data, exported graphs): $FERKIT_CACHE or ~/.cache/ferkit."""
    return Path(os.environ.get("FERKIT_CACHE") or Path.home() / ".cache" / "ferkit")


def file_sha256(path: str | Path) -> str:
    """The file's sha256, computed once per version of the file: checkpoints are hashed on every model load (to
    match them with their ONNX graphs), and a checkpoint is 10 MB, the FER2013 csv 90."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
