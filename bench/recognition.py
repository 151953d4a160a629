"""Recognition speed on this machine, printed as ratios against baselines measured in the same run.

1. Classifier faces/s at batch 1 and 64: ONNX Runtime (ferkit's runtime) vs PyTorch (the same checkpoint).
2. End to end (decode frame → detect → align → classify) frames/s on a 640×480 video with 1 and 4 real faces,
   vs the `fer` package's pipeline (OpenCV Haar + mini-Xception) on the same frames when it is installed:
       pip install --no-deps fer==25.10.3 && pip install ai-edge-litert
   (optional: skipped with a message otherwise).
3. Detector back-ends on one 640×480 frame (median ms).

Run on an idle machine:  python bench/recognition.py [--model default] [--seconds 3] [--threads 2]
The frames are real photos (scikit-image), assembled by ferkit.testing.media.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


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


def _shim_fer_imports() -> None:
    """fer imports tensorflow, requests and pkg_resources at module level but, with use_tflite=True (its
    default), needs only a TFLite interpreter and a resource path: give it ai-edge-litert's interpreter and
    small stand-ins for the rest, so `pip install --no-deps fer==25.10.3 ai-edge-litert` is enough."""
    import importlib.util
    import types

    if importlib.util.find_spec("tensorflow") is None:
        from ai_edge_litert.interpreter import Interpreter

        tf = types.ModuleType("tensorflow")
        tf.lite = types.SimpleNamespace(Interpreter=Interpreter)
        keras = types.ModuleType("tensorflow.keras")
        models = types.ModuleType("tensorflow.keras.models")
        models.load_model = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no Keras here: use_tflite only"))
        keras.models = models
        tf.keras = keras
        sys.modules.update({"tensorflow": tf, "tensorflow.keras": keras, "tensorflow.keras.models": models})
    if importlib.util.find_spec("requests") is None:
        requests = types.ModuleType("requests")
        requests.RequestException = Exception
        sys.modules["requests"] = requests
    if importlib.util.find_spec("pkg_resources") is None:
        pkg = types.ModuleType("pkg_resources")

        def resource_filename(package, name):
            spec = importlib.util.find_spec(package)
            return str(Path(spec.origin).parent / name)

        pkg.resource_filename = resource_filename
        sys.modules["pkg_resources"] = pkg


def fer_pipeline(extra_path: str | None = None):
    """fer's detector + classifier as one callable on a BGR frame, or (None, reason)."""
    if extra_path:
        sys.path.append(extra_path)  # after site-packages, so its copies of numpy etc. never shadow ours
    try:
        _shim_fer_imports()
        from fer.fer import FER
    except Exception as exc:  # noqa: BLE001 - not installed, or its imports fail
        return None, f"fer is not usable here ({type(exc).__name__}: {exc}); see the docstring to install it"
    try:
        import logging

        logging.getLogger("fer").setLevel(logging.WARNING)

        detector = FER(mtcnn=False)
        return (lambda frame: detector.detect_emotions(frame)), None
    except Exception as exc:  # noqa: BLE001
        return None, f"fer could not start ({type(exc).__name__}: {exc})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="shipped model name, run folder or checkpoint")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--threads", type=int, default=0, help="threads for torch / onnxruntime (0: their default)")
    parser.add_argument("--frames", type=int, default=60, help="frames in each test video")
    parser.add_argument("--fer-path", help="a folder where fer and ai-edge-litert were pip-installed with --target")
    args = parser.parse_args()

    import cv2
    import torch

    from ferkit.classifier.onnx_classifier import OnnxClassifier
    from ferkit.classifier.torch_classifier import TorchClassifier
    from ferkit.runtime.recognizer import Recognizer
    from ferkit.testing.media import multi_face_frame, one_face_frame, write_video
    from ferkit.vision.detect import create_detector

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = args.threads or None
    print(f"ferkit recognition bench — torch threads {torch.get_num_threads()}, model {args.model}")

    torch_model = TorchClassifier.load(args.model)
    onnx_model = OnnxClassifier.load(args.model, threads=threads)
    print(f"model: {torch_model.arch} from {torch_model.source}; TTA {','.join(torch_model.tta) or 'none'}")
    recognizer = Recognizer(onnx_model, threads=threads)
    faces = recognizer.crops(multi_face_frame()[0], recognizer.detect(multi_face_frame()[0]))
    crops = np.resize(faces, (64, 48, 48)).astype(np.uint8)

    print("\n1. classifier faces/s (model's own TTA)")
    print(f"{'batch':>6} {'PyTorch':>10} {'ONNX RT':>10} {'ratio':>7}")
    for batch in (1, 64):
        x = crops[:batch]
        t = rate(lambda: torch_model.predict_proba(x), batch, args.seconds)
        o = rate(lambda: onnx_model.predict_proba(x), batch, args.seconds)
        print(f"{batch:>6} {t:>10.0f} {o:>10.0f} {o / t:>6.2f}×")

    with tempfile.TemporaryDirectory() as tmp:
        videos = {1: write_video(Path(tmp) / "one.mp4", [one_face_frame(dx=2 * (i % 40)) for i in range(args.frames)]),
                  4: write_video(Path(tmp) / "four.mp4", [multi_face_frame()[0]] * args.frames)}
        fer, reason = fer_pipeline(args.fer_path)
        print("\n2. end to end frames/s on 640×480 video (decode + detect + align + classify)")
        header = f"{'faces':>6} {'ferkit':>8} {'ferkit+torch':>13}"
        header += f" {'fer':>7} {'vs fer':>7}" if fer else ""
        print(header)
        torch_recognizer = Recognizer(torch_model, threads=threads)
        for count, path in videos.items():
            ours = frames_per_second(recognizer.predict, path, args.seconds)
            with_torch = frames_per_second(torch_recognizer.predict, path, args.seconds)
            line = f"{count:>6} {ours:>8.1f} {with_torch:>13.1f}"
            if fer:
                theirs = frames_per_second(fer, path, args.seconds)
                first = cv2.VideoCapture(str(path)).read()[1]
                line += (f" {theirs:>7.1f} {ours / theirs:>6.2f}×   (faces in frame 0: ferkit "
                         f"{len(recognizer.predict(first))}, fer {len(fer(first))})")
            print(line)
        if not fer:
            print(f"   (fer baseline skipped: {reason})")

    print("\n3. detector back-ends, median ms on one 640×480 frame with 1 face")
    frame = one_face_frame()
    for name in ("retinaface", "haar"):
        detector = create_detector(name, **({"threads": threads} if name == "retinaface" and threads else {}))
        print(f"   {name:<11} {median_ms(lambda: detector.detect(frame)):6.1f} ms  "
              f"({len(detector.detect(frame))} face)")
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    print(f"   align+crop  {median_ms(lambda: recognizer.crops(gray, recognizer.detect(frame)[:1])):6.1f} ms "
          "(includes detection)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
