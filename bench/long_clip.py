"""A long video made from real frames, for measuring memory over a long recognition run.

    python bench/long_clip.py /tmp/clip.mp4 [--minutes 10] [--fps 10]
    /usr/bin/time -v ferkit predict /tmp/clip.mp4 --quiet --no-progress --video-dir /tmp/out   # peak RSS

1280×720, in blocks of 20 seconds: the astronaut moving (one face), the four-face frame, a photo with no face.
"""

from __future__ import annotations

import argparse
import sys

import cv2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    from ferkit.testing.media import multi_face_frame, no_face_images, one_face_frame

    size = (1280, 720)
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), args.fps, size)
    four, empty = cv2.resize(multi_face_frame()[0], size), cv2.resize(no_face_images()[0], size)
    block = int(20 * args.fps)
    frames = int(args.minutes * 60 * args.fps)
    for i in range(frames):
        phase = (i // block) % 3
        writer.write(cv2.resize(one_face_frame(dx=(i % 100) - 50), size) if phase == 0 else four if phase == 1
                     else empty)
    writer.release()
    print(f"wrote {args.out}: {frames} frames of {size[0]}×{size[1]} at {args.fps:g} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
