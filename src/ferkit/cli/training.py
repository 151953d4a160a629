"""Subcommands that make models: `ferkit train`, `ferkit soup`, and `ferkit augment` (a look at the augmentation)."""

from __future__ import annotations

from pathlib import Path

from ferkit.cli.arguments import add_skip_bad_rows, note, positive_int
from ferkit.errors import FerkitError
from ferkit.train.config import TrainConfig


def add_train(sub) -> None:
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
    p.add_argument("--epochs", type=int, help="passes over the training split")
    p.add_argument("--time-budget", dest="time_budget_min", type=float, metavar="MINUTES",
                   help="stop after this many minutes whatever the epoch; cosine decays over the time "
                        "(--epochs is then a cap)")
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--optimizer", choices=TrainConfig.choices("optimizer"), help="sgd is with Nesterov momentum")
    p.add_argument("--schedule", choices=TrainConfig.choices("schedule"), help="learning-rate schedule")
    p.add_argument("--labels", choices=TrainConfig.choices("labels"),
                   help="FER2013's seven labels, or FER+'s eight (fer2013new.csv beside the csv); a folder set's "
                        "labels are its class folders' names")
    p.add_argument("--clean", action="store_true", default=None, help="drop blank images and leaked duplicates")
    add_skip_bad_rows(p)
    p.add_argument("--subset", type=int, help="use only the first N training images")
    p.add_argument("--seed", type=int, help="weights, shuffling, augmentation and a folder set's validation cut")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast")
    p.add_argument("--tensorboard", action="store_true", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_train)
    _name_config_defaults(p)


def _name_config_defaults(parser) -> None:
    """train's flags default to None so that a --config file's values win over them; their help names the default
    of TrainConfig instead."""
    defaults = TrainConfig().to_dict()
    for action in parser._actions:
        value = defaults.get(action.dest)
        if action.dest not in defaults or action.nargs == 0 or value in ("", None):
            continue
        shown = {("subset", 0): "0 = all", ("time_budget_min", 0.0): "0 = none", ("threads", 0): "0 = torch's"}.get(
            (action.dest, value), value)
        action.help = f"{action.help or ''} (default: {str(shown).replace('%', '%%')})".lstrip()


def cmd_train(args) -> int:
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
                 "clean": args.clean, "skip_bad_rows": args.skip_bad_rows, "subset": args.subset, "seed": args.seed,
                 "threads": args.threads,
                 "device": args.device, "channels_last": args.channels_last, "bf16": args.bf16,
                 "tensorboard": args.tensorboard, "progress": args.progress}
        values = {**config.to_dict(), **{k: v for k, v in flags.items() if v is not None}}
        config = TrainConfig.from_dict(values).override(args.overrides)
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise FerkitError(f"--out {args.out} is a file; a run needs a folder")
        if Path(args.out, "last.pt").exists():
            raise FerkitError(f"{args.out} already holds a run; use --resume to continue it or choose another --out")
        summary = train(config, args.out)
    if summary["main"]:  # under torchrun, one process speaks
        print(f"best {summary['best_val_acc']:.4f} on the validation split; checkpoints in {summary['out']}")
    return 0


def add_augment(sub) -> None:
    p = sub.add_parser("augment", help="save a PNG grid of training images beside their augmented versions")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz) or a folder of class folders")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--config", help="YAML training config whose `augment` section to use")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation overrides, e.g. --set augment.rotation=20")
    p.add_argument("--count", type=positive_int, default=8, help="number of images (rows, at most 200)")
    p.add_argument("--versions", type=positive_int, default=5, help="augmented versions per image (at most 20)")
    p.add_argument("--seed", type=int, default=0)
    add_skip_bad_rows(p)
    p.set_defaults(func=cmd_augment)


def cmd_augment(args) -> int:
    from ferkit.data import load_dataset
    from ferkit.data.augment import AugmentConfig
    from ferkit.data.preview import augmented_versions
    from ferkit.render.image_grid import save_image_grid

    if args.count > 200 or args.versions > 20:
        raise FerkitError("--count is at most 200 images and --versions at most 20 (a grid to look at, not a data set)")
    config = (TrainConfig.from_yaml(args.config) if args.config else TrainConfig()).override(args.overrides)
    try:
        augment = AugmentConfig.from_dict(config.augment)
    except (TypeError, ValueError) as exc:
        raise FerkitError(str(exc)) from None
    faces = load_dataset(args.data, skip_bad_rows=bool(args.skip_bad_rows), log=note)
    tiles = augmented_versions(faces.images[: args.count], augment,
                               versions=args.versions, seed=args.seed)
    save_image_grid(args.out, tiles)
    print(f"wrote {args.out}")
    return 0


def add_soup(sub) -> None:
    p = sub.add_parser("soup", help="average the weights of nets of one architecture into one net (PublicTest chooses)",
                       description="A model soup (Wortsman et al., 2022): rank the members by PublicTest accuracy, "
                                   "start from the best, and keep each next one only if the average of the weights "
                                   "does not lose PublicTest accuracy. The result costs what one member costs. Only "
                                   "nets that share a basin average well (warm restarts of one checkpoint). "
                                   "PrivateTest is never read.")
    p.add_argument("members", nargs="+", help="shipped names, run folders or checkpoints (one architecture)")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz): PublicTest chooses")
    p.add_argument("--out", required=True, help="the checkpoint to write")
    p.add_argument("--bn-recompute", action="store_true",
                   help="also try each soup with BN statistics re-estimated on clean Training faces")
    p.add_argument("--uniform", action="store_true", help="average all members instead of the greedy choice")
    add_skip_bad_rows(p)
    p.set_defaults(func=cmd_soup)


def cmd_soup(args) -> int:
    from ferkit.train.soup import make_soup

    result = make_soup(args.members, args.data, args.out, bn_recompute=args.bn_recompute, uniform=args.uniform,
                       skip_bad_rows=bool(args.skip_bad_rows))
    print(f"soup of {len(result['members'])} ({' + '.join(result['members'])}"
          f"{', BN re-estimated' if result['bn_recomputed'] else ''}): PublicTest {result['accuracy']:.4f} -> "
          f"{args.out}")
    return 0
