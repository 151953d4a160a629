"""A small folder data set of real faces, to try `ferkit train` on folders before you have photos of your own.

    python tools/fer2013_folders.py --data ../shared/data/fer2013/fer2013.csv.gz --out mydata \\
        --classes happy=smiling,neutral=calm,surprise --per-class 300
    ferkit train --model simple_cnn --data mydata --out runs/mine --epochs 5
    python tools/fer2013_folders.py --data ../shared/data/fer2013/fer2013.csv.gz --out heldout --usage PrivateTest \
        --classes happy=smiling,neutral=calm,surprise
    ferkit evaluate --model runs/mine --data heldout --split test

Writes OUT/CLASS/NNNNN.png (48×48 gray) from FER2013's Training rows, the first --per-class faces of each class in
file order, or with --usage PublicTest / PrivateTest OUT/val/CLASS/ or OUT/test/CLASS/ from those rows, a held-out
set; `happy=smiling` names the folder `smiling`, which is how a set of your own classes looks. The result is a
derived copy of part of FER2013: keep it on your machine, never commit it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from ferkit.data import load_dataset
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS, USAGES

# Training rows make a plain set (training draws its own validation split); the test splits make held-out sets.
SPLIT_FOLDER = {"Training": "", "PublicTest": "val", "PrivateTest": "test"}


def parse_classes(text: str) -> dict[str, str]:
    """'happy=smiling,sad' → {'happy': 'smiling', 'sad': 'sad'} (FER2013 class → folder name)."""
    chosen = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        source, _, folder = item.partition("=")
        source, folder = source.strip(), (folder.strip() or source.strip())
        if source not in EMOTIONS:
            raise FerkitError(f"{source!r} is not a FER2013 class; choose from {', '.join(EMOTIONS)}")
        if not folder or any(ch in folder for ch in "/\\") or folder.startswith("."):
            raise FerkitError(f"{folder!r} is not a usable folder name")
        chosen[source] = folder
    if len(chosen) < 2:
        raise FerkitError("give at least two classes, e.g. --classes happy,sad")
    if len(set(chosen.values())) != len(chosen):
        raise FerkitError("two classes would share one folder name")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FER2013 csv(.gz)")
    parser.add_argument("--out", required=True, help="folder to create (must not exist yet)")
    parser.add_argument("--classes", default="happy,sad,neutral", help="FER2013 classes, optionally =FOLDER_NAME")
    parser.add_argument("--per-class", type=int, default=300, help="faces per class")
    parser.add_argument("--usage", choices=USAGES, default="Training",
                        help="the FER2013 rows to take: Training (OUT/CLASS/), PublicTest (OUT/val/CLASS/) or "
                             "PrivateTest (OUT/test/CLASS/)")
    args = parser.parse_args()
    try:
        chosen = parse_classes(args.classes)
        if args.per_class < 1:
            raise FerkitError(f"--per-class must be at least 1, got {args.per_class}")
        out = Path(args.out)
        if out.exists():
            raise FerkitError(f"{out} exists already; give a new folder")
        faces = load_dataset(args.data)
        taken = faces.usage == USAGES.index(args.usage)
        root = out / SPLIT_FOLDER[args.usage]
        for source, folder in chosen.items():
            rows = np.flatnonzero(taken & (faces.labels == EMOTIONS.index(source)))[: args.per_class]
            (root / folder).mkdir(parents=True)
            for row in rows:
                cv2.imwrite(str(root / folder / f"{int(row):05d}.png"), faces.images[row])
            print(f"{root / folder}: {len(rows)} faces", flush=True)
    except FerkitError as exc:
        print(f"fer2013_folders: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
