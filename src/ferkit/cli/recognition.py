"""Subcommands that recognise faces: `ferkit predict` (images, folders, videos, a camera) and `ferkit serve`."""

from __future__ import annotations

import sys
from pathlib import Path

from ferkit.cli.arguments import add_recognition_options, add_runtime_options
from ferkit.errors import FerkitError


def add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="find faces in images, folders, videos or a camera and give their expressions",
        description="Detect faces, align them and give the expression probabilities of each. Images, folders and "
                    "glob patterns are processed in batches; videos give an annotated video, a per-frame CSV, a "
                    "timeline PNG and a per-face-track summary. With --crops each image is taken as one face crop "
                    "(no detection).")
    p.add_argument("inputs", nargs="*",
                   help="image or video files, folders, glob patterns, or @LIST.txt (one path a line)")
    p.add_argument("--json", help="write one record per face as JSON here")
    p.add_argument("--csv", help="write one row per face as CSV here")
    p.add_argument("--annotate", metavar="DIR", help="write annotated images and per-face probability charts here")
    p.add_argument("--crops", action="store_true", help="each image is already one face crop: no detection")
    p.add_argument("--camera", metavar="INDEX_OR_URL", help="run live on a camera index (0) or a stream URL")
    add_recognition_options(p)
    p.add_argument("--batch-size", type=int, default=32, help="images decoded and classified together")
    p.add_argument("--video-dir", default="ferkit-output", metavar="DIR",
                   help="where video results go (annotated mp4, frames CSV, timeline PNG, tracks JSON)")
    p.add_argument("--max-frames", type=int, help="stop a video or camera after this many frames")
    p.add_argument("--no-show", dest="show", action="store_false", help="no live window for --camera")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="do not print one line per face")
    p.set_defaults(func=cmd_predict)


def _print_records(records) -> None:
    for record in records:
        probs = "  ".join(f"{k} {v:.3f}" for k, v in record["probabilities"].items())
        where = "" if record.get("frame") is None else f" frame {record['frame']}"
        face = f"face {record.get('face', 1)} {record['box']}"
        print(f"{record['source']}{where} {face}: {record['emotion']} ({record['score']:.3f})  |  {probs}")


def _unique_stem(path: Path, used: set) -> str:
    stem, n = path.stem, 2
    while stem in used:
        stem, n = f"{path.stem}-{n}", n + 1
    used.add(stem)
    return stem


def cmd_predict(args) -> int:
    try:
        return _cmd_predict(args)
    except OSError as exc:  # an output folder or file that cannot be written
        raise FerkitError(f"{exc.filename or ''}: cannot write ({exc.strerror})") from None


def _cmd_predict(args) -> int:
    from ferkit.classifier.protocol import load_classifier
    from ferkit.media.inputs import split_inputs
    from ferkit.runtime.precropped import predict_crop_files
    from ferkit.runtime.recognizer import Recognizer

    tta = args.tta  # None: each model's own
    if not args.inputs and args.camera is None:
        raise FerkitError("give image or video files, folders or patterns, or --camera INDEX_OR_URL")
    if args.batch_size < 1:
        raise FerkitError("--batch-size must be at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise FerkitError("--max-frames must be at least 1 (leave it out for every frame)")
    images, videos = split_inputs(args.inputs)
    if args.inputs and not images and not videos:
        raise FerkitError("no images found in the given inputs")
    records, errors, no_face = [], [], []
    labels = None

    if args.crops:
        if videos or args.camera is not None:
            raise FerkitError("--crops takes image files only (each one face crop), not videos or a camera")
        classifier = load_classifier(args.model, args.backend, precision=args.precision, device=args.device)
        labels = classifier.labels
        records, errors = predict_crop_files(images, classifier, tta=tta)
        if not args.quiet:
            _print_records(records)
    else:
        recognizer = Recognizer(args.model, detector=args.detector, threshold=args.threshold, min_face=args.min_face,
                                preprocess=args.preprocess, tta=tta, align=args.align, backend=args.backend,
                                precision=args.precision, device=args.device)
        labels = recognizer.labels
        if images:
            records += _predict_images(recognizer, images, args, errors, no_face)
        for video in videos:
            records += _predict_video(recognizer, video, args, errors)
        if args.camera is not None:
            records += _predict_camera(recognizer, args)

    if args.json:
        from ferkit.runtime.outputs import write_json

        write_json(records, args.json)
    if args.csv:
        from ferkit.runtime.outputs import write_csv

        write_csv(records, args.csv, labels)
    if no_face:
        print(f"no face found in {len(no_face)} image(s): {', '.join(no_face[:10])}"
              f"{' …' if len(no_face) > 10 else ''}", file=sys.stderr)
    if errors:
        total = len(images) + len(videos)
        print(f"{len(errors)} of {total} input(s) could not be read:", file=sys.stderr)
        for message in errors:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


def _predict_images(recognizer, paths, args, errors, no_face) -> list[dict]:
    from ferkit.media.images import read_image

    records, used = [], set()
    bar = None
    if args.progress and len(paths) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="image", desc="predict", leave=False)
    annotate = Path(args.annotate) if args.annotate else None
    for start in range(0, len(paths), args.batch_size):
        arrays, names = [], []
        for path in paths[start:start + args.batch_size]:
            try:
                arrays.append(read_image(path))
                names.append(path)
            except FerkitError as exc:
                errors.append(str(exc))
        results = recognizer.predict_batch(arrays, sources=[str(n) for n in names]) if arrays else []
        for array, path, faces in zip(arrays, names, results):
            if not faces:
                no_face.append(str(path))
            records += faces
            if not args.quiet:
                if bar:
                    bar.clear()
                _print_records(faces)
            if annotate:
                _annotate_image(array, faces, annotate, _unique_stem(path, used))
        if bar:
            bar.update(len(paths[start:start + args.batch_size]))
    if bar:
        bar.close()
    return records


def _annotate_image(image, faces, folder: Path, stem: str) -> None:
    import cv2

    from ferkit.render.charts import probability_chart
    from ferkit.render.overlay import draw_faces

    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{stem}.jpg"), draw_faces(image, faces))
    for face in faces:  # named by the face's number: the one on its box and in its JSON/CSV record
        n = face["face"]
        probability_chart(face, folder / f"{stem}.face{n}.png",
                          title=f"{stem} face {n}: {face['emotion']} ({face['score']:.2f})")


def _predict_video(recognizer, path: Path, args, errors) -> list[dict]:
    from ferkit.runtime.video_recognition import process_video

    out = Path(args.annotate or args.video_dir)
    try:
        result = process_video(recognizer, path, out_video=out / f"{path.stem}.annotated.mp4",
                               csv_path=out / f"{path.stem}.frames.csv",
                               timeline_path=out / f"{path.stem}.timeline.png",
                               summary_path=out / f"{path.stem}.tracks.json", max_frames=args.max_frames,
                               progress=args.progress, keep_records=bool(args.json or args.csv))
    except FerkitError as exc:
        errors.append(str(exc))
        return []
    print(f"{path}: {result['frames']} frames, {len(result['tracks'])} face track(s), "
          f"{result['frames'] / max(result['seconds'], 1e-9):.1f} frames/s; results in {out}/{path.stem}.*")
    for track in result["tracks"]:
        print(f"  face #{track['track']}: frames {track['first_frame']}-{track['last_frame']} "
              f"({track['frames']} seen), mostly {track['emotion']} ({track['score']:.2f})")
    if result["truncated"] and args.max_frames is None:
        errors.append(f"{path}: stopped after {result['frames']} of {result.get('frame_count') or 'the'} frames: "
                      f"the file is truncated or corrupt (results cover the readable part)")
    return result["records"]


def _predict_camera(recognizer, args) -> list[dict]:
    from ferkit.media.video import has_display, parse_camera
    from ferkit.runtime.video_recognition import process_video

    source = parse_camera(args.camera)
    show = args.show and has_display()
    out = Path(args.annotate) if args.annotate else None
    if not show:
        print(f"no display: running headless on camera {args.camera} (Ctrl-C to stop)", file=sys.stderr)

    def report(index, faces):
        if not show and not args.quiet and faces:
            text = ", ".join(f"#{f['track']} {f['emotion']} {f['score']:.2f}" for f in faces)
            print(f"frame {index}: {text}", flush=True)

    try:
        result = process_video(recognizer, source, out_video=out / "camera.annotated.mp4" if out else None,
                               csv_path=out / "camera.frames.csv" if out else None,
                               timeline_path=out / "camera.timeline.png" if out else None,
                               summary_path=out / "camera.tracks.json" if out else None, show=show,
                               max_frames=args.max_frames, progress=False, on_frame=report,
                               keep_records=bool(args.json or args.csv))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return []
    print(f"camera {args.camera}: {result['frames']} frames, {len(result['tracks'])} face track(s)")
    return result["records"]


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="the web app and REST API (photo, webcam and video recognition in a browser)",
                       description="Serve the page at / and the REST API under /api/v1 (OpenAPI docs at /docs) "
                                   "with uvicorn. Binds to 127.0.0.1 unless --host says otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--model", default="default", help="shipped model name, run folder, checkpoint or .onnx file")
    p.add_argument("--detector", default="retinaface", help="default face detector: retinaface or haar")
    p.add_argument("--workers", type=int, default=2,
                   help="inference threads: images recognised at once (default 2); more requests wait their turn")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per model (default: cores / workers)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default 20) → 413")
    p.add_argument("--max-megapixels", type=float, default=50.0,
                   help="largest image in megapixels, checked before decoding (default 50) → 413")
    p.add_argument("--max-video-frames", type=int, default=1800, help="frames recognised per video (default 1800)")
    p.add_argument("--upload-memory-mb", type=float,
                   help="upload bodies held in memory at once, in MB (default 8 x --max-upload-mb); "
                        "more uploads get 503 before they are read")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages of this origin (e.g. http://localhost:3000) call the API; repeatable. Requests "
                        "from other pages' origins get 403 (requests without an Origin, as curl's, are not affected)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for this host name (e.g. behind a proxy, or a DNS name when bound to "
                        "0.0.0.0; '*' for any); repeatable. Other Host headers get 400")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_runtime_options(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    import os

    try:
        from ferkit.web.app import serve
        from ferkit.web.ports import bind_problem
    except ImportError as exc:
        raise FerkitError(f"the web app needs {exc.name}: pip install fastapi uvicorn python-multipart "
                          "fastapi-offline") from None
    if not 0 <= args.port <= 65535:
        raise FerkitError(f"--port must be within 0..65535, got {args.port}")
    if args.max_megapixels <= 0 or args.max_video_frames < 1:
        raise FerkitError("--max-megapixels and --max-video-frames must be positive")
    if args.upload_memory_mb is not None and not args.upload_memory_mb > 0:
        raise FerkitError("--upload-memory-mb must be positive")
    # before the model loads: a busy port is one line, not uvicorn's logs. FERKIT_SERVE_RETRY: what `make run`
    # suggests running instead ("make run PORT={port}")
    problem = bind_problem(args.host, args.port, os.environ.get("FERKIT_SERVE_RETRY"))
    if problem:
        raise FerkitError(problem)
    serve(host=args.host, port=args.port, log_level=args.log_level, model=args.model, detector=args.detector,
          precision=args.precision, device=args.device,
          workers=args.workers, threads=args.threads, max_upload_mb=args.max_upload_mb,
          max_pixels=int(args.max_megapixels * 1_000_000), max_video_frames=args.max_video_frames,
          upload_memory_mb=args.upload_memory_mb, allow_origins=args.allow_origin, allowed_hosts=args.allowed_host)
    return 0
