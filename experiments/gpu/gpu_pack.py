"""Carry FER2013 to a lent GPU machine, which reaches nothing outside it and takes at most 64 MiB of files.

    python experiments/gpu/gpu_pack.py pack ../shared/data/fer2013/fer2013.csv.gz .gpudata      # here
    python experiments/gpu/gpu_pack.py unpack .gpudata /tmp/fer2013                             # there

The pack holds every image as lossless WebP mosaics (bit-exact: checked on unpack; 55 MiB against the csv.gz's
90), the labels and usage of every row, and fer2013new.csv.gz. `unpack` writes a fer2013.csv in the Kaggle format,
row for row (so FER+ votes still align by position), with fer2013new.csv.gz beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

TILE = 48
GRID = (40, 50)  # faces per mosaic: rows × columns (WebP allows at most 16383 pixels a side)
USAGES = ("Training", "PublicTest", "PrivateTest")


def pack(csv_path: Path, out: Path) -> None:
    from ferkit.data.fer2013 import load_fer2013

    faces = load_fer2013(csv_path)
    out.mkdir(parents=True, exist_ok=True)
    usage = np.asarray(faces.usage)
    images = faces.images
    per = GRID[0] * GRID[1]
    for chunk, start in enumerate(range(0, len(images), per)):
        block = np.zeros((per, TILE, TILE), np.uint8)
        part = images[start:start + per]
        block[:len(part)] = part
        mosaic = block.reshape(GRID[0], GRID[1], TILE, TILE).transpose(0, 2, 1, 3).reshape(GRID[0] * TILE, -1)
        ok, data = cv2.imencode(".webp", mosaic, [cv2.IMWRITE_WEBP_QUALITY, 101])  # >100 = lossless
        if not ok:
            raise SystemExit("WebP encoding failed")
        (out / f"faces-{chunk:03d}.webp").write_bytes(data.tobytes())
    np.savez_compressed(out / "rows.npz", labels=faces.labels, usage=usage)
    (out / "manifest.json").write_text(json.dumps({
        "rows": len(faces), "sha256": hashlib.sha256(images.tobytes()).hexdigest()}))
    ferplus = csv_path.parent / "fer2013new.csv.gz"
    if ferplus.exists():
        shutil.copy(ferplus, out / ferplus.name)
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"packed {len(faces):,} faces into {out} ({size:.1f} MiB)")


def unpack(pack_dir: Path, out: Path) -> Path:
    rows = np.load(pack_dir / "rows.npz")
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    tiles = []
    for path in sorted(pack_dir.glob("faces-*.webp")):
        mosaic = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
        tiles.append(mosaic.reshape(GRID[0], TILE, GRID[1], TILE).transpose(0, 2, 1, 3).reshape(-1, TILE, TILE))
    images = np.concatenate(tiles)[:manifest["rows"]]
    if hashlib.sha256(images.tobytes()).hexdigest() != manifest["sha256"]:
        raise SystemExit("unpacked faces differ from the packed ones")
    out.mkdir(parents=True, exist_ok=True)
    table = [str(i) for i in range(256)]
    csv = out / "fer2013.csv"
    with open(csv, "w") as handle:
        handle.write("emotion,pixels,Usage\n")
        for label, usage, image in zip(rows["labels"], rows["usage"], images.reshape(len(images), -1)):
            handle.write(f"{label},{' '.join(map(table.__getitem__, image.tolist()))},{USAGES[usage]}\n")
    if (pack_dir / "fer2013new.csv.gz").exists():
        shutil.copy(pack_dir / "fer2013new.csv.gz", out / "fer2013new.csv.gz")
    print(f"unpacked {len(images):,} rows into {csv}")
    return csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    (pack if args.action == "pack" else unpack)(args.source, args.dest)


if __name__ == "__main__":
    main()
