"""Face detection: how many faces each detector setting finds, how many it invents, and how long a frame takes.

The frames are real: PublicTest faces of FER2013 (the INT8 detector is calibrated on Training faces), enlarged to
40–160 px and placed on scikit-image's photos without faces, 1 to 3 per 640×480 frame, apart. A face counts as
found when a detected box overlaps it with IoU > 0.3. These tight 48×48 crops show less context than a photo does,
so recall here is lower than on real photos; the figures are for comparing settings with each other.

    python bench/detection.py --data ../shared/data/fer2013/fer2013.csv.gz [--frames 120]
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np


def frames_with_faces(data, count: int, seed: int = 1):
    from skimage import data as photos

    from ferkit.data import load_dataset

    faces = load_dataset(data).split("PublicTest").images
    backgrounds = [cv2.cvtColor(photos.coffee(), cv2.COLOR_RGB2BGR), cv2.cvtColor(photos.rocket(), cv2.COLOR_RGB2BGR),
                   cv2.cvtColor(photos.chelsea(), cv2.COLOR_RGB2BGR)]
    rng = np.random.default_rng(seed)
    frames, truth, k = [], [], 0
    for i in range(count):
        frame, boxes = cv2.resize(backgrounds[i % len(backgrounds)], (640, 480)), []
        for _ in range(rng.integers(1, 4)):
            side = int(rng.integers(40, 160))
            for _ in range(20):  # a place clear of the faces already there
                x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
                if all(x + side < bx or bx + bs < x or y + side < by or by + bs < y for bx, by, bs in boxes):
                    break
            face = cv2.resize(faces[k % len(faces)], (side, side), interpolation=cv2.INTER_CUBIC)
            frame[y:y + side, x:x + side] = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
            boxes.append((x, y, side))
            k += 1
        frames.append(frame)
        truth.append(boxes)
    return frames, truth


def score(detector, frames, truth) -> dict:
    from ferkit.testing.media import iou

    found = invented = total = 0
    started = time.perf_counter()
    for frame, boxes in zip(frames, truth):
        detected = detector.detect(frame)
        squares = [(x, y, s, s) for x, y, s in boxes]
        found += sum(any(iou(b, d.box) > 0.3 for d in detected) for b in squares)
        invented += sum(not any(iou(b, d.box) > 0.3 for b in squares) for d in detected)
        total += len(boxes)
    return {"recall": found / total, "faces": total, "false": invented,
            "ms_per_frame": (time.perf_counter() - started) / len(frames) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FER2013 csv(.gz): its PublicTest faces are placed")
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    from ferkit.vision.detect import create_detector

    frames, truth = frames_with_faces(args.data, args.frames)
    print(f"{len(frames)} frames, {sum(map(len, truth))} faces")
    settings = (("retinaface fp32", {"precision": "fp32"}, None), ("retinaface int8", {"precision": "int8"}, None),
                ("retinaface fp32, min_face 40", {"precision": "fp32", "min_face": 40}, None),
                ("  the same, faces shrunk to 24 px", {"precision": "fp32", "min_face": 40}, 24),
                ("haar", {}, None))
    for name, kwargs, smallest in settings:
        detector = create_detector(name.split()[0] if name[0] != " " else "retinaface", **kwargs)
        if smallest:  # detect on frames shrunk so that a min_face face spans `smallest` px, not 48
            detector.SMALLEST_FACE = smallest
        result = score(detector, frames, truth)
        print(f"{name:<34} recall {result['recall']:.3f}  false {result['false']:>3}  "
              f"{result['ms_per_frame']:6.1f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
