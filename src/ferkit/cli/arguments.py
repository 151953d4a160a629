"""Argument types the subcommands share."""

from __future__ import annotations

import argparse


def tta_argument(text: str) -> list[str]:
    """--tta MODES: "none", "flip", "shift" or a comma-separated mix, checked while parsing."""
    from ferkit.classifier.tta import parse_tta

    try:
        return parse_tta(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
