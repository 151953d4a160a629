"""Ship a run's best checkpoint inside the package: `python tools/ship.py runs/NAME default`.

Keeps what recognition needs (weights, architecture, labels, preprocessing, TTA, config, validation metrics)
and drops the optimiser, so the file stays small; refuses anything over 20 MB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferkit.runtime.models import WEIGHTS_DIR, resolve_checkpoint
from ferkit.train.checkpoint import load_checkpoint, save_checkpoint

KEEP = ("arch", "arch_kwargs", "labels", "preprocess", "config", "parameters", "tta", "metrics", "epoch",
        "elapsed_s", "model_state", "temperature", "calibration", "members")
LIMIT_BYTES = 20 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="run folder or checkpoint")
    parser.add_argument("name", help="shipped name, e.g. default, fast, ferplus")
    parser.add_argument("--tta", nargs="*", help="test-time augmentation to record (e.g. flip)")
    args = parser.parse_args()
    state = load_checkpoint(resolve_checkpoint(args.run))
    slim = {key: state[key] for key in KEEP if key in state}
    if args.tta is not None:
        slim["tta"] = args.tta
    out = WEIGHTS_DIR / f"{args.name}.pt"
    save_checkpoint(out, slim)
    size = out.stat().st_size
    if size > LIMIT_BYTES:
        out.unlink()
        print(f"{out}: {size / 1e6:.1f} MB is over the 20 MB limit; not shipped", file=sys.stderr)
        return 1
    print(f"shipped {args.run} as {args.name!r}: {out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
