"""Argument types the subcommands share."""

from __future__ import annotations

import argparse
import sys


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already speaks of it or there is none worth
    naming (None, an on/off flag, an empty list)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text.lower() or default in (None, argparse.SUPPRESS, [])
                or isinstance(default, bool) or action.nargs == 0):
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


def tta_argument(text: str) -> list[str]:
    """--tta MODES: "none", "flip", "shift" or a comma-separated mix, checked while parsing."""
    from ferkit.classifier.tta import parse_tta

    try:
        return parse_tta(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def split_argument(text: str) -> str:
    """--split: FER2013's names (Training, PublicTest, PrivateTest), or a folder set's (train, val, test, ...)."""
    from ferkit.data.folders import SPLIT_FOLDERS

    return SPLIT_FOLDERS.get(text.lower(), text)


def add_skip_bad_rows(parser) -> None:
    """--skip-bad-rows, on every command that reads a csv (a bad row otherwise stops it, naming the line)."""
    parser.add_argument("--skip-bad-rows", action="store_true", default=None,
                        help="skip malformed csv rows (and say how many, at which lines) instead of stopping")


def positive_int(text: str) -> int:
    """An integer of at least 1, checked while parsing."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def note(line: str) -> None:
    """A side remark (what was skipped, say) on stderr, so that stdout keeps only the results."""
    print(line, file=sys.stderr, flush=True)


def add_runtime_options(parser) -> None:
    """--precision and --device: which ONNX Runtime graphs run recognition, and on which provider."""
    from ferkit.sessions import DEVICES, PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto (default: the classifier's INT8 graph where it is the faster, as on x86 CPUs; "
                             "the face detector in fp32), fp32 or int8 (both)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="ONNX Runtime's provider: auto (CUDA if installed, else CPU), cpu, cuda (needs "
                             "onnxruntime-gpu) or openvino (needs onnxruntime-openvino); falls back to the CPU")


def add_recognition_options(parser) -> None:
    """The model and face options of every command that finds faces in photos and videos (predict, batch)."""
    from ferkit.classifier.protocol import BACKENDS

    parser.add_argument("--model", default="default", help="shipped model name, run folder, checkpoint or .onnx file")
    parser.add_argument("--tta", type=tta_argument, metavar="MODES",
                        help="test-time augmentation: none, flip, shift or flip,shift (default: the model's own)")
    parser.add_argument("--detector", default="retinaface", help="face detector back-end: retinaface (default) or haar")
    parser.add_argument("--threshold", type=float, help="face detection confidence threshold (0..1)")
    parser.add_argument("--min-face", type=int, default=20, help="smallest face side in pixels (default 20)")
    parser.add_argument("--preprocess", default="none",
                        help="crop preprocessing: none, or a comma list of equalize, clahe, gamma, smooth")
    parser.add_argument("--no-align", dest="align", action="store_false", help="do not rotate faces to level the eyes")
    parser.add_argument("--backend", choices=BACKENDS, default="onnx", help="classifier runtime (default onnx)")
    add_runtime_options(parser)
