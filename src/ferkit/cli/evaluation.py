"""Subcommands that measure models: `ferkit evaluate`, `ferkit report` and `ferkit calibrate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ferkit.classifier.onnx_classifier import PRECISIONS
from ferkit.classifier.protocol import BACKENDS
from ferkit.cli.arguments import add_skip_bad_rows, note, split_argument, tta_argument
from ferkit.errors import FerkitError
from ferkit.files import write_atomically
from ferkit.labels import FERPLUS_TESTS, USAGES


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class precision/recall/F1 and confusion matrix on a split")
    p.add_argument("--model", default="default", help="shipped model name, run folder or checkpoint file")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--split", default="PrivateTest", type=split_argument, choices=USAGES,
                   help="split to score; a folder set's test/, val/ and train/ folders are also test, val and train "
                        "(a folder without split folders is scored whole)")
    p.add_argument("--tta", type=tta_argument, metavar="MODES",
                   help="test-time augmentation: none, flip, shift or flip,shift (default: the model's own)")
    p.add_argument("--clean", action="store_true", help="drop blank images (and leaked Training rows)")
    p.add_argument("--ferplus-test", choices=FERPLUS_TESTS, default="plurality",
                   help="FER+ models: score every face under its top-voted emotion (plurality, default), or only the "
                        "faces where one emotion holds more than half of the votes once single votes are dropped "
                        "(strict: the FER+ authors' test protocol, the one published FER+ figures use)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch (default: the checkpoint in PyTorch, as training scored it) or onnx (the graph "
                        "recognition runs, at --precision)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="with --backend onnx: fp32, int8, or auto (what `ferkit predict` runs on this machine)")
    add_skip_bad_rows(p)
    p.add_argument("--json", help="write the full report as JSON here")
    p.add_argument("--confusion", help="write the normalised confusion matrix PNG here")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from ferkit.classifier.protocol import load_classifier
    from ferkit.evaluate.scoring import evaluate_classifier, evaluation_data, training_overlap_warning
    from ferkit.render.confusion import plot_confusion

    classifier = load_classifier(args.model, args.backend, precision=args.precision)
    faces = evaluation_data(args.data, args.split, classifier.labels, clean=args.clean, ferplus_test=args.ferplus_test,
                            skip_bad_rows=bool(args.skip_bad_rows), log=note)
    warning = training_overlap_warning(_model_info(args.model, classifier), args.data, faces, args.split)
    if warning:
        note(warning)
    report = evaluate_classifier(classifier, faces, tta=args.tta)
    report.update(model=str(args.model), checkpoint=classifier.source, data=str(args.data),
                  split=faces.split_name(args.split) if faces.usage is not None else "all", clean=bool(args.clean),
                  backend=args.backend, precision=getattr(classifier, "precision", "fp32"))
    if "ferplus_test" in faces.info:
        report["ferplus_test"] = faces.info["ferplus_test"]
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, row in report["per_class"].items():
        print(f"{name:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>9}")
    print(f"macro-F1 {report['macro_f1']:.4f}")
    protocol = f", FER+ {report['ferplus_test']} labels" if "ferplus_test" in report else ""
    runtime = "PyTorch" if args.backend == "torch" else f"ONNX Runtime {report['precision']}"
    print(f"accuracy {report['accuracy']:.4f} on {report['count']} images ({report['split']}, "
          f"TTA {','.join(report['tta']) or 'none'}{protocol}, {runtime})")
    if args.json:
        write_atomically(args.json, json.dumps(report, indent=2))
    confusion = args.confusion or (str(Path(args.json).with_suffix("")) + "_confusion.png" if args.json else None)
    if confusion:
        plot_confusion(confusion, report["confusion_matrix"], report["labels"],
                       title=f"{args.model} on {report['split']}: accuracy {report['accuracy']:.4f}")
    return 0


def _model_info(model, classifier):
    """The checkpoint's ModelInfo behind a classifier (None for an .onnx file: it does not say what it trained on)."""
    if getattr(classifier, "info", None) is not None:
        return classifier.info
    if Path(str(model)).suffix.lower() == ".onnx":
        return None
    from ferkit.classifier.checkpoint import load_checkpoint
    from ferkit.classifier.shipped import resolve_checkpoint

    return load_checkpoint(resolve_checkpoint(model)).info


def add_report(sub) -> None:
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
    p.add_argument("--split", default="PrivateTest", type=split_argument, choices=USAGES,
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
    p.add_argument("--backend", choices=BACKENDS, default="onnx", help="runtime of the robustness passes")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--clean", action="store_true", help="drop blank images from the splits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_skip_bad_rows(p)
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
                              clean=args.clean, progress=args.progress, command="ferkit " + " ".join(sys.argv[1:]),
                              skip_bad_rows=bool(args.skip_bad_rows))
    except ValueError as exc:
        raise FerkitError(str(exc)) from None
    for r in result["models"]:
        if r.warning:
            note(f"{r.name}: {r.warning}")
        print(f"{r.name}: accuracy {r.metrics['accuracy']:.4f}, macro-F1 {r.metrics['macro_f1']:.4f}"
              + (f", temperature {r.calibration['temperature']:.3f}" if r.calibration else ""))
    print(f"wrote {result['html']} and {result['markdown']} in {result['seconds']:.0f} s")
    return 0


def add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="fit a temperature on PublicTest and write it into a checkpoint",
                       description="Temperature scaling: find the T that minimises the negative log-likelihood of "
                                   "softmax(logits / T) on PublicTest (never PrivateTest) and store it in the "
                                   "checkpoint as `temperature`; predict, evaluate and exported ONNX models then use "
                                   "it. Confidences change; the predicted class does not (with flip TTA, averaging the "
                                   "two views can rarely swap a near tie).")
    p.add_argument("--model", required=True, help="checkpoint file, run folder (its best.pt) or shipped model name")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz)")
    p.add_argument("--split", default="PublicTest", type=split_argument,
                   help="split to fit on (default PublicTest, a folder set's val/; never PrivateTest)")
    p.add_argument("--out", help="write the calibrated checkpoint here instead of in place")
    p.add_argument("--subset", type=int, default=0, metavar="N", help="fit on a stratified sample of N images")
    add_skip_bad_rows(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    from ferkit.evaluate.calibration import calibrate_checkpoint

    if args.subset < 0:
        raise FerkitError(f"--subset must be 0 (all) or more, got {args.subset}")
    record = calibrate_checkpoint(args.model, args.data, split=args.split, out=args.out, subset=args.subset,
                                  skip_bad_rows=bool(args.skip_bad_rows))
    print(f"temperature {record['temperature']:.4f} (was {record['previous_temperature']:g}) fitted on "
          f"{record['count']} {record['split']} images: NLL {record['nll_before']:.4f} → {record['nll_after']:.4f}, "
          f"ECE {record['ece_before']:.4f} → {record['ece_after']:.4f}; written to {record['checkpoint']}")
    return 0
