"""`ferkit batch` against `ferkit predict` on the same inputs: what Ray costs on one machine, and 1 against 2 workers.

    python bench/batch.py [--photos 400] [--videos 2] [--frames 300] [--model default] [--json OUT.json]

Each command runs as a user runs it (a new process: start-up, model loading and all), on an archive of real
640×480 frames (ferkit.testing.media: the astronaut moving, the four-face frame, a photo without a face) written
as JPEG photos and as mp4 videos. Figures: wall seconds, faces/s over the photos, video frames/s over the videos,
and each batch run's ratio to `ferkit predict` measured in the same sitting; then the fixed cost of a batch job
(one photo: Ray's start, a worker's models) against predict's; then what each stage costs one core (CPU ms:
video decode at 480p, 720p, 1080p; detection; align and crop; classification per face), the figures of
docs/scale.md's plan. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recognition import machine  # bench/recognition.py, beside this script


def make_archive(folder: Path, photos: int, videos: int, frames: int) -> tuple[Path, Path, Path]:
    import cv2

    from ferkit.testing.media import multi_face_frame, no_face_images, one_face_frame, write_video

    photo_dir, video_dir, single = folder / "photos", folder / "videos", folder / "single"
    for sub in (photo_dir, video_dir, single):
        sub.mkdir(parents=True)
    for n in range(photos):
        kind = n % 4  # two of four with one face, one with four faces, one with none
        frame = (one_face_frame(dx=(n % 80) - 40) if kind < 2 else multi_face_frame()[0] if kind == 2
                 else cv2.resize(no_face_images()[0], (640, 480)))
        cv2.imwrite(str(photo_dir / f"p{n:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    for v in range(videos):
        write_video(video_dir / f"v{v}.mp4", [one_face_frame(dx=((i + 17 * v) % 120) - 60) for i in range(frames)],
                    fps=30.0)
    shutil.copy(photo_dir / "p00000.jpg", single / "one.jpg")
    return photo_dir, video_dir, single


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds


def predict(inputs: Path, model: str, scratch: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=scratch))
    seconds = timed([sys.executable, "-m", "ferkit.cli", "predict", str(inputs), "--model", model, "--json",
                     str(out / "faces.json"), "--video-dir", str(out / "videos"), "--quiet", "--no-progress"])
    FOUND[inputs] = len(json.loads((out / "faces.json").read_text()))
    return seconds


FOUND: dict[Path, int] = {}  # faces that predict found in each input folder


def batch(inputs: Path, model: str, scratch: Path, workers: int, cpus_per_worker: float) -> float:
    out = Path(tempfile.mkdtemp(dir=scratch)) / "out"
    return timed([sys.executable, "-m", "ferkit.cli", "batch", str(inputs), "--model", model, "--out", str(out),
                  "--workers", str(workers), "--cpus-per-worker", str(cpus_per_worker), "--no-progress"])


def decode_cpu_ms(folder: Path, frames: int = 90) -> dict:
    """CPU ms (all threads) to decode one frame of an mp4v video at 480p, 720p and 1080p with OpenCV, as ferkit's
    video reader does: the per-core cost of the decode stage."""
    import cv2

    from ferkit.media.video import VideoReader
    from ferkit.testing.media import one_face_frame, write_video

    costs = {}
    for width, height in ((640, 480), (1280, 720), (1920, 1080)):
        path = write_video(folder / f"decode{height}.mp4",
                           [cv2.resize(one_face_frame(dx=i % 60), (width, height)) for i in range(frames)], fps=30.0)
        started, read = time.process_time(), 0
        for _ in range(3):
            with VideoReader(path) as reader:
                read += sum(1 for _ in reader)
        costs[f"{height}p"] = round((time.process_time() - started) * 1000 / read, 2)
    return costs


def stage_cpu_ms(models=("default", "fast"), repeats: int = 20) -> dict:
    """CPU ms per call of each recognition stage with one ONNX Runtime thread (the cost per core), on a one-face
    frame at 640×480 and at 1080p (the detector scales the long side to 640 first)."""
    import cv2

    from ferkit.runtime.recognizer import Recognizer
    from ferkit.testing.media import one_face_frame

    def cpu_ms(fn) -> float:
        fn()
        started = time.process_time()
        for _ in range(repeats):
            fn()
        return round((time.process_time() - started) * 1000 / repeats, 2)

    costs = {}
    for model in models:
        recognizer = Recognizer(model, threads=1)
        for name, frame in (("480p", one_face_frame()), ("1080p", cv2.resize(one_face_frame(), (1920, 1080)))):
            faces = recognizer.detect(frame)
            crops = recognizer.crops(frame, faces)
            costs.setdefault("detect", {})[name] = cpu_ms(lambda: recognizer.detect(frame))
            costs.setdefault("align_crop", {})[name] = cpu_ms(lambda: recognizer.crops(frame, faces))
        precision = recognizer.classifier.precision
        costs.setdefault("classify_per_face", {})[f"{model} {precision}"] = cpu_ms(lambda: recognizer.classify(crops))
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300, help="frames of each video")
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--stages-only", action="store_true", help="only the per-core costs of each stage")
    args = parser.parse_args()
    if args.stages_only:
        print(json.dumps({"machine": machine(), "stage_cpu_ms": stage_cpu_ms()}, indent=2))
        return 0
    frames = args.videos * args.frames
    runs = {"predict": lambda i, m, s: predict(i, m, s),
            "batch, 1 worker of 2 CPUs": lambda i, m, s: batch(i, m, s, 1, 2),
            "batch, 1 worker of 1 CPU": lambda i, m, s: batch(i, m, s, 1, 1),
            "batch, 2 workers of 1 CPU": lambda i, m, s: batch(i, m, s, 2, 1)}
    results = {"machine": machine(), "model": args.model, "photos": args.photos, "video_frames": frames,
               "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        photos, videos, single = make_archive(scratch / "archive", args.photos, args.videos, args.frames)
        for name, run in runs.items():  # predict first: it counts the faces
            row = {"photos_s": run(photos, args.model, scratch), "videos_s": run(videos, args.model, scratch),
                   "one_photo_s": run(single, args.model, scratch)}
            row["faces_per_s"] = FOUND[photos] / row["photos_s"]
            row["video_frames_per_s"] = frames / row["videos_s"]
            results["runs"][name] = row
        results["decode_cpu_ms_per_frame"] = decode_cpu_ms(scratch)
    results["stage_cpu_ms"] = stage_cpu_ms()
    results["photo_faces"] = FOUND[photos]
    print(f"{results['machine']}; model {args.model}; {args.photos} photos ({FOUND[photos]} faces), {args.videos} "
          f"videos of {args.frames} frames (640×480)")
    base = results["runs"]["predict"]
    print(f"{'':28} {'photos s':>9} {'faces/s':>8} {'vs predict':>10} {'videos s':>9} {'frames/s':>9} "
          f"{'vs predict':>10} {'1 photo s':>9}")
    for name, row in results["runs"].items():
        row["faces_ratio"] = row["faces_per_s"] / base["faces_per_s"]
        row["frames_ratio"] = row["video_frames_per_s"] / base["video_frames_per_s"]
        print(f"{name:28} {row['photos_s']:9.1f} {row['faces_per_s']:8.1f} {row['faces_ratio']:9.2f}× "
              f"{row['videos_s']:9.1f} {row['video_frames_per_s']:9.1f} {row['frames_ratio']:9.2f}× "
              f"{row['one_photo_s']:9.1f}")
    print("video decode, CPU ms per frame (mp4v, OpenCV): " + ", ".join(
        f"{k} {v}" for k, v in results["decode_cpu_ms_per_frame"].items()))
    for stage, costs in results["stage_cpu_ms"].items():
        print(f"{stage}, CPU ms, one thread: " + ", ".join(f"{k} {v}" for k, v in costs.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
