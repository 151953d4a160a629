"""The server's temporary folder for video jobs, and the removal of those that earlier servers left behind.

A server keeps its video uploads and annotated videos in one ``ferkit-web-*`` folder of the temporary directory,
created at the first video. Its ``owner`` file names the process (PID and start time), so that a server starting
later can tell a folder left by a killed server (SIGKILL, a crash, a power cut) from one that is still in use:
it removes a folder only when its owner is no longer running, and never one of another user.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

PREFIX = "ferkit-web-"
OWNER_FILE = "owner"
LEGACY_AGE_S = 24 * 3600  # folders of servers that wrote no owner file: removed once this old

log = logging.getLogger("uvicorn.error")


def process_start(pid: int) -> str | None:
    """The start time of process pid (Linux: /proc/PID/stat field 22), or None when unknown or not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may contain spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def owner_running(pid: int, start: str | None) -> bool:
    """Whether the process that wrote an owner file is still running (a reused PID does not count)."""
    if Path("/proc/self/stat").exists():
        current = process_start(pid)
        return current is not None and (start is None or current == start)
    if os.name != "posix":
        return True  # no safe way to tell here: keep the folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _owner(folder: Path) -> tuple[int, str | None] | None:
    try:
        words = (folder / OWNER_FILE).read_text().split()
        return int(words[0]), (words[1] if len(words) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def sweep_stale(root: str | Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the ferkit-web-* folders of servers that are no longer running; returns the folders removed."""
    root = Path(root or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for folder in sorted(root.glob(PREFIX + "*")):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink():
            continue
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            continue  # another user's: not ours to remove
        owner = _owner(folder)
        if owner is None:
            stale = now - info.st_mtime > LEGACY_AGE_S
        else:
            stale = not owner_running(*owner)
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    if removed:
        log.info("removed %d temporary folder(s) left by earlier ferkit servers", len(removed))
    return removed


class Scratch:
    """This server's own folder: one subfolder per video job, all removed by close()."""

    def __init__(self, root: str | Path | None = None):
        self.root = root
        self.path: Path | None = None
        self.closed = False
        self._lock = threading.Lock()

    def folder(self) -> Path:
        with self._lock:
            if self.closed:
                raise RuntimeError("the server is shutting down")
            if self.path is None:
                path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.root))
                (path / OWNER_FILE).write_text(f"{os.getpid()} {process_start(os.getpid()) or ''}\n")
                self.path = path
            return self.path

    def job_folder(self, job_id: str) -> Path:
        folder = self.folder() / job_id
        folder.mkdir(exist_ok=True)
        return folder

    def remove_job(self, job_id: str) -> None:
        if self.path is not None:
            shutil.rmtree(self.path / job_id, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            path, self.path = self.path, None
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
