"""The `ferkit` command: models, train, evaluate, predict, export (more subcommands join as they are built).

Every subcommand turns a FerkitError (bad input, missing file, ...) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.labels import FERPLUS_TESTS


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on FER2013 / FER+ / a class-folder data set",
                       description="Train a registered model. Values come from the defaults, then --config FILE.yaml, "
                                   "then the flags below, then --set key=value (dotted keys reach into dicts, "
                                   "e.g. --set augment.mixup=0.2 --set model_kwargs.width=48).")
    p.add_argument("--model", help="registered model name (see `ferkit models`)")
    p.add_argument("--data", help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--out", required=True, help="run folder: checkpoints, history.csv, curves.png")
    p.add_argument("--config", help="YAML file of TrainConfig values")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (its saved config; --epochs may extend "
                        "it, --threads/--device/--no-progress/--tensorboard may change)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--time-budget", dest="time_budget_min", type=float, metavar="MINUTES",
                   help="stop after this many minutes whatever the epoch; cosine decays over the time "
                        "(--epochs is then a cap)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--schedule", choices=["cosine", "onecycle", "plateau", "none"])
    p.add_argument("--labels", choices=["fer2013", "ferplus"])
    p.add_argument("--clean", action="store_true", default=None, help="drop blank images and leaked duplicates")
    p.add_argument("--subset", type=int, help="use only the first N training images")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast")
    p.add_argument("--tensorboard", action="store_true", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from ferkit.train.config import TrainConfig
    from ferkit.train.engine import train

    if args.resume:
        runtime = {"threads": args.threads, "device": args.device, "progress": args.progress,
                   "tensorboard": args.tensorboard}
        summary = train(None, args.out, resume=True, epochs=args.epochs, runtime=runtime)
    else:
        config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
        flags = {"model": args.model, "data": args.data, "epochs": args.epochs,
                 "time_budget_min": args.time_budget_min, "batch_size": args.batch_size,
                 "lr": args.lr, "optimizer": args.optimizer, "schedule": args.schedule, "labels": args.labels,
                 "clean": args.clean, "subset": args.subset, "seed": args.seed, "threads": args.threads,
                 "device": args.device, "channels_last": args.channels_last, "bf16": args.bf16,
                 "tensorboard": args.tensorboard, "progress": args.progress}
        values = {**config.to_dict(), **{k: v for k, v in flags.items() if v is not None}}
        config = TrainConfig.from_dict(values).override(args.overrides)
        if Path(args.out, "last.pt").exists():
            raise FerkitError(f"{args.out} already holds a run; use --resume to continue it or choose another --out")
        summary = train(config, args.out)
    print(f"best {summary['best_val_acc']:.4f} on the validation split; checkpoints in {summary['out']}")
    return 0


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list registered architectures and shipped models")
    p.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    from ferkit.models import count_parameters, create_model, list_models
    from ferkit.runtime.models import shipped_models
    from ferkit.train.checkpoint import load_checkpoint

    print(f"{'architecture':<16}{'parameters':>14}{'with BN stats':>16}")
    for name in list_models():
        model = create_model(name)
        print(f"{name:<16}{count_parameters(model):>14,}{count_parameters(model, keras_style=True):>16,}")
    print()
    print(f"{'shipped model':<16}{'architecture':<16}{'parameters':>12}  {'labels':<8}{'TTA':<12}PublicTest")
    for name, path in shipped_models().items():
        state = load_checkpoint(path)
        metrics = state.get("metrics", {})
        print(f"{name:<16}{state['arch']:<16}{state.get('parameters', 0):>12,}  {len(state['labels']):<8}"
              f"{','.join(state.get('tta', [])) or '-':<12}{metrics.get('val_acc', float('nan')):.4f}")
    return 0


def tta_argument(text: str) -> list[str]:
    """--tta MODES: "none", "flip", "shift" or a comma-separated mix, checked while parsing."""
    from ferkit.runtime.tta import parse_tta

    try:
        return parse_tta(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class precision/recall/F1 and confusion matrix on a split")
    p.add_argument("--model", default="default", help="shipped model name, run folder or checkpoint file")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--split", default="PrivateTest", choices=["Training", "PublicTest", "PrivateTest"])
    p.add_argument("--tta", type=tta_argument, metavar="MODES",
                   help="test-time augmentation: none, flip, shift or flip,shift (default: the model's own)")
    p.add_argument("--clean", action="store_true", help="drop blank images (and leaked Training rows)")
    p.add_argument("--ferplus-test", choices=FERPLUS_TESTS, default="plurality",
                   help="FER+ models: score every face under its top-voted emotion (plurality, default), or only the "
                        "faces where one emotion holds more than half of the votes once single votes are dropped "
                        "(strict: the FER+ authors' test protocol, the one published FER+ figures use)")
    p.add_argument("--json", help="write the full report as JSON here")
    p.add_argument("--confusion", help="write the normalised confusion matrix PNG here")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from ferkit.evaluate.evaluate import evaluate_classifier, evaluation_data
    from ferkit.evaluate.plots import plot_confusion
    from ferkit.runtime.models import TorchClassifier

    classifier = TorchClassifier.load(args.model)
    faces = evaluation_data(args.data, args.split, classifier.labels, clean=args.clean, ferplus_test=args.ferplus_test)
    report = evaluate_classifier(classifier, faces, tta=args.tta)
    report.update(model=str(args.model), checkpoint=classifier.source, data=str(args.data),
                  split=args.split if faces.usage is not None else "all", clean=bool(args.clean))
    if "ferplus_test" in faces.info:
        report["ferplus_test"] = faces.info["ferplus_test"]
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, row in report["per_class"].items():
        print(f"{name:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>9}")
    print(f"macro-F1 {report['macro_f1']:.4f}")
    protocol = f", FER+ {report['ferplus_test']} labels" if "ferplus_test" in report else ""
    print(f"accuracy {report['accuracy']:.4f} on {report['count']} images ({report['split']}, "
          f"TTA {','.join(report['tta']) or 'none'}{protocol})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    confusion = args.confusion or (str(Path(args.json).with_suffix("")) + "_confusion.png" if args.json else None)
    if confusion:
        plot_confusion(confusion, report["confusion_matrix"], report["labels"],
                       title=f"{args.model} on {report['split']}: accuracy {report['accuracy']:.4f}")
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="find faces in images, folders, videos or a camera and give their expressions",
        description="Detect faces, align them and give the expression probabilities of each. Images, folders and "
                    "glob patterns are processed in batches; videos give an annotated video, a per-frame CSV, a "
                    "timeline PNG and a per-face-track summary. With --crops each image is taken as one face crop "
                    "(no detection).")
    p.add_argument("inputs", nargs="*", help="image or video files, folders or glob patterns")
    p.add_argument("--model", default="default", help="shipped model name, run folder, checkpoint or .onnx file")
    p.add_argument("--tta", type=tta_argument, metavar="MODES",
                   help="test-time augmentation: none, flip, shift or flip,shift (default: the model's own)")
    p.add_argument("--json", help="write one record per face as JSON here")
    p.add_argument("--csv", help="write one row per face as CSV here")
    p.add_argument("--annotate", metavar="DIR", help="write annotated images and per-face probability charts here")
    p.add_argument("--crops", action="store_true", help="each image is already one face crop: no detection")
    p.add_argument("--camera", metavar="INDEX_OR_URL", help="run live on a camera index (0) or a stream URL")
    p.add_argument("--detector", default="retinaface", help="face detector back-end: retinaface (default) or haar")
    p.add_argument("--threshold", type=float, help="face detection confidence threshold (0..1)")
    p.add_argument("--min-face", type=int, default=20, help="smallest face side in pixels (default 20)")
    p.add_argument("--preprocess", default="none",
                   help="crop preprocessing: none, or a comma list of equalize, clahe, gamma, smooth")
    p.add_argument("--no-align", dest="align", action="store_false", help="do not rotate faces to level the eyes")
    p.add_argument("--backend", choices=["onnx", "torch"], default="onnx", help="classifier runtime (default onnx)")
    p.add_argument("--batch-size", type=int, default=32, help="images decoded and classified together")
    p.add_argument("--video-dir", default="ferkit-output", metavar="DIR",
                   help="where video results go (annotated mp4, frames CSV, timeline PNG, tracks JSON)")
    p.add_argument("--max-frames", type=int, help="stop a video or camera after this many frames")
    p.add_argument("--no-show", dest="show", action="store_false", help="no live window for --camera")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="do not print one line per face")
    p.set_defaults(func=cmd_predict)


def _split_inputs(inputs):
    """(image paths, video paths) from files, folders and patterns; unknown files count as images so that
    reading them reports the problem."""
    import glob as globmod

    from ferkit.media.inputs import expand_inputs
    from ferkit.media.video import is_video_path

    images, videos = [], []
    for item in inputs:
        text = str(item)
        if any(ch in text for ch in "*?[") and not Path(text).exists():
            videos += [Path(m) for m in sorted(globmod.glob(text, recursive=True)) if is_video_path(m)]
            found = expand_inputs([text])
            if videos and len(found) == 1 and not found[0].exists():
                continue  # the pattern matched videos only
            images += found
        elif Path(text).is_dir():
            images += expand_inputs([text])
            videos += sorted(p for p in Path(text).rglob("*") if p.is_file() and is_video_path(p))
        elif is_video_path(text):
            videos.append(Path(text))
        else:
            images.append(Path(text))
    return images, videos


def _print_records(records) -> None:
    for record in records:
        probs = "  ".join(f"{k} {v:.3f}" for k, v in record["probabilities"].items())
        where = "" if record.get("frame") is None else f" frame {record['frame']}"
        print(f"{record['source']}{where} {record['box']}: {record['emotion']} ({record['score']:.3f})  |  {probs}")


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
    from ferkit.runtime.crops import predict_crop_files
    from ferkit.runtime.recognizer import Recognizer, load_classifier

    tta = args.tta  # None: each model's own
    if not args.inputs and args.camera is None:
        raise FerkitError("give image or video files, folders or patterns, or --camera INDEX_OR_URL")
    if args.batch_size < 1:
        raise FerkitError("--batch-size must be at least 1")
    images, videos = _split_inputs(args.inputs)
    if args.inputs and not images and not videos:
        raise FerkitError("no images found in the given inputs")
    records, errors, no_face = [], [], []
    labels = None

    if args.crops:
        if videos or args.camera is not None:
            raise FerkitError("--crops takes image files only (each one face crop), not videos or a camera")
        classifier = load_classifier(args.model, args.backend)
        labels = classifier.labels
        records, errors = predict_crop_files(images, classifier, tta=tta)
        if not args.quiet:
            _print_records(records)
    else:
        recognizer = Recognizer(args.model, detector=args.detector, threshold=args.threshold, min_face=args.min_face,
                                preprocess=args.preprocess, tta=tta, align=args.align, backend=args.backend)
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
    for i, face in enumerate(faces):
        probability_chart(face, folder / f"{stem}.face{i}.png", title=f"{stem} face {i}: {face['emotion']} "
                                                                        f"({face['score']:.2f})")


def _predict_video(recognizer, path: Path, args, errors) -> list[dict]:
    from ferkit.runtime.videos import process_video

    out = Path(args.annotate or args.video_dir)
    try:
        result = process_video(recognizer, path, out_video=out / f"{path.stem}.annotated.mp4",
                               csv_path=out / f"{path.stem}.frames.csv", timeline_path=out / f"{path.stem}.timeline.png",
                               summary_path=out / f"{path.stem}.tracks.json", max_frames=args.max_frames,
                               progress=args.progress)
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
    from ferkit.runtime.videos import process_video

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
                               max_frames=args.max_frames, progress=False, on_frame=report)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return []
    print(f"camera {args.camera}: {result['frames']} frames, {len(result['tracks'])} face track(s)")
    return result["records"]


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (verified against PyTorch)",
                       description="Write the model as ONNX: float32 N×1×48×48 normalised crops in, probabilities "
                                   "out; labels, TTA and preprocessing in the metadata. Fails if ONNX Runtime's "
                                   "outputs differ from PyTorch's by more than 1e-4.")
    p.add_argument("--model", default="default", help="shipped model name, run folder or checkpoint file")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ferkit.runtime.export import export_onnx

    path = export_onnx(args.model, args.out, opset=args.opset)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); outputs match PyTorch within 1e-4")
    return 0


def _add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="combine trained models into one (mean of their probabilities)",
                       description="Write one checkpoint that averages the members' probabilities, each member at "
                                   "its own calibration temperature. It works wherever a checkpoint does: evaluate, "
                                   "predict, calibrate, export, serve, and as a distillation teacher.")
    p.add_argument("members", nargs="+", help="shipped model names, run folders or checkpoint files (two or more)")
    p.add_argument("--out", required=True, help="the checkpoint to write")
    p.add_argument("--tta", type=tta_argument, help="the ensemble's TTA (default: the members' own, if they agree)")
    p.set_defaults(func=cmd_ensemble)


def cmd_ensemble(args) -> int:
    from ferkit.runtime.ensemble import save_ensemble

    state = save_ensemble(args.members, args.out, tta=args.tta)
    out = Path(args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(state['members'])} members, "
          f"{state['parameters']:,} parameters, TTA {','.join(state['tta']) or 'none'}")
    return 0


def _add_augment(sub) -> None:
    p = sub.add_parser("augment", help="save a PNG grid of training images beside their augmented versions")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--config", help="YAML training config whose `augment` section to use")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation overrides, e.g. --set augment.rotation=20")
    p.add_argument("--count", type=int, default=8, help="number of images (rows)")
    p.add_argument("--versions", type=int, default=5, help="augmented versions per image")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_augment)


def cmd_augment(args) -> int:
    from ferkit.data import load_dataset
    from ferkit.data.augment import AugmentConfig
    from ferkit.data.preview import save_augment_grid
    from ferkit.train.config import TrainConfig

    config = (TrainConfig.from_yaml(args.config) if args.config else TrainConfig()).override(args.overrides)
    faces = load_dataset(args.data)
    save_augment_grid(args.out, faces.images[: args.count], AugmentConfig.from_dict(config.augment),
                      versions=args.versions, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _add_serve(sub) -> None:
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
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    try:
        from ferkit.web.app import serve
    except ImportError as exc:
        raise FerkitError(f"the web app needs {exc.name}: pip install fastapi uvicorn python-multipart") from None
    if not 0 <= args.port <= 65535:
        raise FerkitError(f"--port must be within 0..65535, got {args.port}")
    if args.max_megapixels <= 0 or args.max_video_frames < 1:
        raise FerkitError("--max-megapixels and --max-video-frames must be positive")
    serve(host=args.host, port=args.port, log_level=args.log_level, model=args.model, detector=args.detector,
          workers=args.workers, threads=args.threads, max_upload_mb=args.max_upload_mb,
          max_pixels=int(args.max_megapixels * 1_000_000), max_video_frames=args.max_video_frames)
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="HTML + Markdown evaluation report: metrics, robustness, calibration, saliency",
                       description="Evaluate one or more models on a split and write DIR/report.html (self-contained: "
                                   "figures inlined, opens from disk), DIR/report.md with DIR/figures/*.png, and "
                                   "DIR/report.json: per-class metrics, confusion matrix, most-confused pairs, "
                                   "training curves (--run), robustness curves (light, contrast, blur, noise, JPEG, "
                                   "rotation, occlusion; with and without equalize/CLAHE), calibration before and "
                                   "after temperature scaling fitted on PublicTest, Grad-CAM maps, and a comparison "
                                   "of the models.")
    p.add_argument("--model", action="append", required=True, metavar="NAME",
                   help="shipped model name, run folder or checkpoint (repeat to compare models)")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the report into")
    p.add_argument("--run", action="append", default=[], metavar="RUN_DIR",
                   help="training run folder whose history.csv to plot, one per --model in order (a --model that "
                        "is a run folder is used as its own)")
    p.add_argument("--split", default="PrivateTest", choices=["Training", "PublicTest", "PrivateTest"],
                   help="split to report on (default PrivateTest; not PublicTest, where the temperature is fitted)")
    p.add_argument("--subset", type=int, default=0, metavar="N",
                   help="use a fixed class-stratified sample of N images of each split (quick looks, tests)")
    p.add_argument("--robustness-size", type=int, metavar="N",
                   help="images of the split in each robustness pass (0: all; default: as many as fit in "
                        "--robustness-seconds at the model's measured speed, 200 to 1500)")
    p.add_argument("--robustness-seconds", type=float, default=300.0, metavar="S",
                   help="time aimed at for one model's robustness passes when --robustness-size is not given")
    p.add_argument("--perturbations", help="comma list of robustness perturbations (default: all of gamma, contrast, "
                                           "blur, noise, jpeg, rotation, eye_band, lower_face, patches)")
    p.add_argument("--preprocess", default="none,equalize,clahe",
                   help="preprocessing options to compare on the lighting perturbations (default none,equalize,clahe)")
    p.add_argument("--backend", choices=["onnx", "torch"], default="onnx", help="runtime of the robustness passes")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--clean", action="store_true", help="drop blank images from the splits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from ferkit.evaluate.report import build_report

    if args.subset < 0 or (args.robustness_size or 0) < 0 or args.robustness_seconds <= 0:
        raise FerkitError("--subset and --robustness-size must be 0 or more, --robustness-seconds positive")
    perturbations = [n.strip() for n in args.perturbations.split(",") if n.strip()] if args.perturbations else None
    preprocess = [o.strip() or "none" for o in args.preprocess.split(",")]
    if "none" not in preprocess:
        preprocess.insert(0, "none")
    try:
        result = build_report(args.model, args.data, args.out, runs=args.run, split=args.split, subset=args.subset,
                              robustness_size=args.robustness_size,
                              robustness_seconds=args.robustness_seconds, perturbations=perturbations,
                              preprocess=preprocess, backend=args.backend, threads=args.threads, seed=args.seed,
                              clean=args.clean, progress=args.progress, command="ferkit " + " ".join(sys.argv[1:]))
    except ValueError as exc:
        raise FerkitError(str(exc)) from None
    for r in result["models"]:
        print(f"{r.name}: accuracy {r.metrics['accuracy']:.4f}, macro-F1 {r.metrics['macro_f1']:.4f}"
              + (f", temperature {r.calibration['temperature']:.3f}" if r.calibration else ""))
    print(f"wrote {result['html']} and {result['markdown']} in {result['seconds']:.0f} s")
    return 0


def _add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="fit a temperature on PublicTest and write it into a checkpoint",
                       description="Temperature scaling: find the T that minimises the negative log-likelihood of "
                                   "softmax(logits / T) on PublicTest (never PrivateTest) and store it in the "
                                   "checkpoint as `temperature`; predict, evaluate and exported ONNX models then use "
                                   "it. Confidences change; the predicted class does not (with flip TTA, averaging the "
                                   "two views can rarely swap a near tie).")
    p.add_argument("--model", required=True, help="checkpoint file, run folder (its best.pt) or shipped model name")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz)")
    p.add_argument("--split", default="PublicTest", help="split to fit on (default PublicTest; never PrivateTest)")
    p.add_argument("--out", help="write the calibrated checkpoint here instead of in place")
    p.add_argument("--subset", type=int, default=0, metavar="N", help="fit on a stratified sample of N images")
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    from ferkit.evaluate.calibration import calibrate_checkpoint

    record = calibrate_checkpoint(args.model, args.data, split=args.split, out=args.out, subset=args.subset)
    print(f"temperature {record['temperature']:.4f} (was {record['previous_temperature']:g}) fitted on "
          f"{record['count']} {record['split']} images: NLL {record['nll_before']:.4f} → {record['nll_after']:.4f}, "
          f"ECE {record['ece_before']:.4f} → {record['ece_after']:.4f}; written to {record['checkpoint']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial expression recognition: train, evaluate, "
                                     "recognise.")
    parser.add_argument("--version", action="version", version=f"ferkit {__import__('ferkit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_models(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_export(sub)
    _add_ensemble(sub)
    _add_augment(sub)
    _add_report(sub)
    _add_calibrate(sub)
    _add_serve(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FerkitError as exc:
        print(f"ferkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ferkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
