"""Ship a run's best checkpoint inside the package: `python tools/ship.py runs/NAME default`.

Keeps what recognition needs (the checkpoint's model part: weights, architecture, labels, preprocessing, TTA,
config, validation metrics) and drops the training state, so the file stays small; refuses anything over 20 MB.
Then `ferkit calibrate` and `ferkit export` (docs/model-card.md, Reproduce).
"""

from __future__ import annotations

import argparse
import sys

from ferkit.classifier.checkpoint import load_checkpoint, save_checkpoint, slim
from ferkit.classifier.shipped import WEIGHTS_DIR, resolve_checkpoint
from ferkit.errors import FerkitError

LIMIT_BYTES = 20 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="run folder or checkpoint")
    parser.add_argument("name", help="shipped name, e.g. default, fast, ferplus")
    parser.add_argument("--tta", nargs="*", help="test-time augmentation to record (e.g. flip)")
    args = parser.parse_args()
    try:
        shipped = slim(load_checkpoint(resolve_checkpoint(args.run)))
    except FerkitError as exc:
        print(f"ship: {exc}", file=sys.stderr)
        return 2
    if args.tta is not None:
        shipped.info.tta = list(args.tta)
    out = WEIGHTS_DIR / f"{args.name}.pt"
    save_checkpoint(out, shipped)
    size = out.stat().st_size
    if size > LIMIT_BYTES:
        out.unlink()
        print(f"{out}: {size / 1e6:.1f} MB is over the 20 MB limit; not shipped", file=sys.stderr)
        return 1
    print(f"shipped {args.run} as {args.name!r}: {out} ({size / 1e6:.2f} MB)")
    data = "../shared/data/fer2013/fer2013.csv.gz"
    print(f"next: ferkit calibrate --model {out} --data {data}\n"
          f"      ferkit export --model {args.name} --out {WEIGHTS_DIR / args.name}.onnx\n"
          f"      ferkit quantize --model {args.name} --data {data}\n"
          f"      ferkit evaluate --model {args.name} --data {data} --split PrivateTest --backend onnx "
          f"--precision fp32 (then int8)\n"
          f"      and record the figures in docs/results.md and {WEIGHTS_DIR.name}/results.json "
          f"(tests/test_cli.py checks that the two agree)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
