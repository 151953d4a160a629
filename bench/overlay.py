"""Drawing cost of the labelled boxes on a crowd frame: draw_faces (label layout included) on a 1280×720 frame with
4 to 100 faces of 40×45 px in rows, as a video overlay draws them every frame. Median of --repeats calls.

    python bench/overlay.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ferkit.labels import EMOTIONS
from ferkit.render.overlay import draw_faces


def crowd(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        p = rng.dirichlet(np.ones(len(EMOTIONS)))
        records.append({"face": i + 1, "box": [20 + (i % 25) * 50, 40 + (i // 25) * 60, 40, 45],
                        "emotion": EMOTIONS[int(p.argmax())], "score": float(p.max()),
                        "probabilities": dict(zip(EMOTIONS, p.tolist()))})
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    frame = np.zeros((720, 1280, 3), np.uint8)
    draw_faces(frame, crowd(4))  # warm-up
    for count in (4, 20, 50, 100):
        records, times = crowd(count), []
        for _ in range(args.repeats):
            start = time.perf_counter()
            draw_faces(frame, records)
            times.append(time.perf_counter() - start)
        print(f"{count:>4} faces: {statistics.median(times) * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
