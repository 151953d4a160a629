"""The `ferkit` command. Each module adds its subcommands: training (train, augment, soup), evaluation (evaluate,
report, calibrate), recognition (predict, serve), batch (batch), sweep (sweep) and model_tools (models, export,
quantize, ensemble).

Every subcommand turns a FerkitError (bad input, missing file, ...) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from ferkit.cli import batch, evaluation, model_tools, recognition, sweep, training
from ferkit.cli.arguments import DefaultsHelpFormatter
from ferkit.errors import FerkitError
from ferkit.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial expression recognition: train, evaluate, "
                                     "recognise.")
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    model_tools.add_models(sub)
    training.add_train(sub)
    evaluation.add_evaluate(sub)
    recognition.add_predict(sub)
    batch.add_batch(sub)
    sweep.add_sweep(sub)
    model_tools.add_export(sub)
    model_tools.add_quantize(sub)
    model_tools.add_ensemble(sub)
    training.add_soup(sub)
    training.add_augment(sub)
    evaluation.add_report(sub)
    evaluation.add_calibrate(sub)
    recognition.add_serve(sub)
    for command in sub.choices.values():  # every command's --help names its defaults
        command.formatter_class = DefaultsHelpFormatter
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FerkitError as exc:
        print(f"ferkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output folder that cannot be made, a disk that fills up: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ferkit {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ferkit {args.command}: interrupted", file=sys.stderr)
        return 130
