"""The `ferkit` command: models, train, evaluate, predict, export (more subcommands join as they are built).

Every subcommand turns a FerkitError (bad input, missing file, ...) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ferkit.errors import FerkitError


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on FER2013 / FER+ / a class-folder data set",
                       description="Train a registered model. Values come from the defaults, then --config FILE.yaml, "
                                   "then the flags below, then --set key=value (dotted keys reach into dicts, "
                                   "e.g. --set augment.mixup=0.2 --set model_kwargs.width=48).")
    p.add_argument("--model", help="registered model name (see `ferkit models`)")
    p.add_argument("--data", help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--out", required=True, help="run folder: checkpoints, history.csv, curves.png")
    p.add_argument("--config", help="YAML file of TrainConfig values")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--epochs", type=int)
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
        summary = train(None, args.out, resume=True, epochs=args.epochs)
    else:
        config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
        flags = {"model": args.model, "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
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
    print(f"{'shipped model':<16}{'architecture':<16}{'parameters':>12}  {'labels':<8}{'TTA':<6}PublicTest")
    for name, path in shipped_models().items():
        state = load_checkpoint(path)
        metrics = state.get("metrics", {})
        print(f"{name:<16}{state['arch']:<16}{state.get('parameters', 0):>12,}  {len(state['labels']):<8}"
              f"{','.join(state.get('tta', [])) or '-':<6}{metrics.get('val_acc', float('nan')):.4f}")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class precision/recall/F1 and confusion matrix on a split")
    p.add_argument("--model", default="default", help="shipped model name, run folder or checkpoint file")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--split", default="PrivateTest", choices=["Training", "PublicTest", "PrivateTest"])
    p.add_argument("--tta", choices=["none", "flip"], help="test-time augmentation (default: the model's own)")
    p.add_argument("--clean", action="store_true", help="drop blank images (and leaked Training rows)")
    p.add_argument("--json", help="write the full report as JSON here")
    p.add_argument("--confusion", help="write the normalised confusion matrix PNG here")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from ferkit.evaluate.evaluate import evaluate_classifier, evaluation_data
    from ferkit.evaluate.plots import plot_confusion
    from ferkit.runtime.models import TorchClassifier

    classifier = TorchClassifier.load(args.model)
    faces = evaluation_data(args.data, args.split, classifier.labels, clean=args.clean)
    tta = None if args.tta is None else ([] if args.tta == "none" else [args.tta])
    report = evaluate_classifier(classifier, faces, tta=tta)
    report.update(model=str(args.model), checkpoint=classifier.source, data=str(args.data),
                  split=args.split if faces.usage is not None else "all", clean=bool(args.clean))
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, row in report["per_class"].items():
        print(f"{name:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>9}")
    print(f"macro-F1 {report['macro_f1']:.4f}")
    print(f"accuracy {report['accuracy']:.4f} on {report['count']} images ({report['split']}, "
          f"TTA {','.join(report['tta']) or 'none'})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    confusion = args.confusion or (str(Path(args.json).with_suffix("")) + "_confusion.png" if args.json else None)
    if confusion:
        plot_confusion(confusion, report["confusion_matrix"], report["labels"],
                       title=f"{args.model} on {report['split']}: accuracy {report['accuracy']:.4f}")
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="the seven expression probabilities for each image (one face crop each)")
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--model", default="default", help="shipped model name, run folder or checkpoint file")
    p.add_argument("--tta", choices=["none", "flip"], help="test-time augmentation (default: the model's own)")
    p.add_argument("--json", help="write one record per face as JSON here")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from ferkit.media.inputs import expand_inputs
    from ferkit.runtime.crops import predict_crop_files
    from ferkit.runtime.models import TorchClassifier

    classifier = TorchClassifier.load(args.model)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise FerkitError("no images found in the given inputs")
    tta = None if args.tta is None else ([] if args.tta == "none" else [args.tta])
    records, errors = predict_crop_files(paths, classifier, tta=tta)
    for record in records:
        probs = "  ".join(f"{k} {v:.3f}" for k, v in record["probabilities"].items())
        print(f"{record['source']}: {record['emotion']} ({record['score']:.3f})  |  {probs}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(records, indent=2))
    if errors:
        print(f"{len(errors)} of {len(paths)} input(s) could not be read:", file=sys.stderr)
        for message in errors:
            print(f"  {message}", file=sys.stderr)
        return 1
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial expression recognition: train, evaluate, "
                                     "recognise.")
    parser.add_argument("--version", action="version", version=f"ferkit {__import__('ferkit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_models(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_augment(sub)
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
