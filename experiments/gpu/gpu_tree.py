"""Keep a device `run` under its 64 MiB: what would travel, and the shipped weights held aside while it runs.

    python experiments/gpu/gpu_tree.py size --carry .gpudata   # bytes that would travel, against the limit
    python experiments/gpu/gpu_tree.py hold                    # move src/ferkit/weights into .git/ (never travels)
    python experiments/gpu/gpu_tree.py restore                 # put them back

Why: the device tool copies the working tree (tracked files and untracked ones git does not ignore) plus the
carried paths, 64 MiB in all. The shipped weights are 39 MiB and the FER2013 pack (experiments/gpu/gpu_pack.py) 55 MiB;
together they do not fit, and a sweep needs only the pack. So: `hold`, then the `run` call(s), then `restore`
at once. While they are held, `make test` fails on the missing models (on purpose: it cannot be forgotten), and
`size` and `hold` say so.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "src" / "ferkit" / "weights"
HELD = ROOT / ".git" / "ferkit-held-weights"
LIMIT = 64 * 2**20


def travelling_files(root: Path = ROOT) -> list[Path]:
    """Tracked files and untracked files git does not ignore, as they are on disk now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.split(b"\0")
    paths = {root / name.decode() for name in listed if name}
    return sorted(p for p in paths if p.is_file() and not p.is_symlink())


def tree_bytes(carry: list[str], root: Path = ROOT) -> tuple[int, int]:
    """(working-tree bytes, carried bytes) that a device `run` would send."""
    tree = sum(p.stat().st_size for p in travelling_files(root))
    carried = 0
    for name in carry:
        path = root / name
        if not path.exists():
            raise SystemExit(f"carry path {name} does not exist")
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        carried += sum(p.stat().st_size for p in files)
    return tree, carried


def hold() -> None:
    if HELD.exists():
        raise SystemExit(f"weights are already held in {HELD}; `restore` first")
    shutil.move(str(WEIGHTS), str(HELD))
    print(f"held {WEIGHTS.relative_to(ROOT)} in {HELD.relative_to(ROOT)}: run "
          "`python experiments/gpu/gpu_tree.py restore` "
          "as soon as the device calls are done")


def restore() -> None:
    if not HELD.exists():
        raise SystemExit("no weights are held")
    if WEIGHTS.exists():
        raise SystemExit(f"{WEIGHTS.relative_to(ROOT)} exists again; compare it with {HELD} by hand")
    shutil.move(str(HELD), str(WEIGHTS))
    print(f"restored {WEIGHTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("size", "hold", "restore"))
    parser.add_argument("--carry", nargs="*", default=[], help="ignored paths the run will carry (size only)")
    args = parser.parse_args()
    if args.action == "hold":
        hold()
    elif args.action == "restore":
        restore()
    else:
        tree, carried = tree_bytes(args.carry)
        total = tree + carried
        print(f"working tree {tree / 2**20:.1f} MiB + carried {carried / 2**20:.1f} MiB = {total / 2**20:.1f} MiB "
              f"of {LIMIT / 2**20:.0f} MiB" + (" (weights held)" if HELD.exists() else ""))
        if total > LIMIT:
            hint = "" if HELD.exists() else "; `experiments/gpu/gpu_tree.py hold` leaves the shipped weights behind"
            sys.exit(f"too big for a device run{hint}")


if __name__ == "__main__":
    main()
