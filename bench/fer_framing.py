"""Measure how FER2013 frames its faces, as seen by our detectors, so the recognition crop matches training.

Each FER2013 image (48×48) is upscaled 4× and pasted in the middle of a larger gray canvas, the detector runs,
and the face box / eye points are expressed in units of the FER2013 frame. The medians give the crop constants
in ferkit.vision.crop (FRAMING). Usage:

    OMP_NUM_THREADS=1 python bench/fer_framing.py [--count 600] [--data ../shared/data/fer2013/fer2013.csv.gz]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import cv2
import numpy as np

from ferkit.vision.detect import create_detector

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def rows(path: Path, count: int):
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as handle:
        handle.readline()
        for i, line in enumerate(handle):
            if i >= count:
                return
            parts = line.strip().split(",")
            yield np.array(parts[1].split(), np.uint8).reshape(48, 48)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DEFAULT))
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args()
    scale, pad = 4, 96
    side = 48 * scale
    for name in ("retinaface", "haar"):
        detector = create_detector(name, threshold=0.5 if name == "haar" else 0.6, min_face=40)
        box_stats, eye_stats, found = [], [], 0
        for image in rows(Path(args.data), args.count):
            if image.std() < 5:
                continue
            big = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
            canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            faces = detector.detect(canvas)
            if not faces:
                continue
            face = faces[0]
            x, y, w, h = face.box
            cx, cy = x + w / 2 - pad, y + h / 2 - pad
            if not (0 < cx < side and 0 < cy < side):
                continue
            found += 1
            # frame side in units of the box size, and the frame centre's offset from the box centre
            box_stats.append((side / w, side / h, (side / 2 - cx) / side, (side / 2 - cy) / side))
            if face.landmarks is not None:
                left, right = face.eyes
                eye_mid = (left + right) / 2 - pad
                mouth_mid = (face.landmarks[3] + face.landmarks[4]) / 2 - pad
                eye_mouth = np.linalg.norm(mouth_mid - eye_mid)
                eye_stats.append((side / eye_mouth, (side / 2 - eye_mid[0]) / side, (side / 2 - eye_mid[1]) / side,
                                  side / np.linalg.norm(right - left)))
        print(f"{name}: found a face in {found} images")
        b = np.median(np.asarray(box_stats), axis=0)
        print(f"  box: frame side = {b[0]:.3f} × box width = {b[1]:.3f} × box height; frame centre = box centre + "
              f"({b[2]:+.3f}, {b[3]:+.3f}) × frame side")
        if eye_stats:
            e = np.median(np.asarray(eye_stats), axis=0)
            print(f"  eyes: frame side = {e[0]:.3f} × eye-to-mouth distance (= {e[3]:.3f} × eye distance); "
                  f"frame centre = eye midpoint + ({e[1]:+.3f}, {e[2]:+.3f}) × frame side")


if __name__ == "__main__":
    main()
