"""Make a trained `vgg` wider without changing its predictions (Net2Wider), as a start for a warm restart.

    python tools/widen.py default --width 40 --out runs/start/default_w40.pt
    ferkit train --config configs/vgg32.yaml --out runs/vgg40_w --set init_from=runs/start/default_w40.pt \\
        --set 'model_kwargs={width: 40, convs_per_stage: [1, 2, 2, 2], dropout: 0.3}' ...

Prints the largest change in the logits over real faces when --data is given, so the copy is checked, not trusted.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ferkit.classifier.checkpoint import Checkpoint, ModelInfo, load_checkpoint, save_checkpoint
from ferkit.classifier.shipped import resolve_checkpoint
from ferkit.errors import FerkitError
from ferkit.models import count_parameters, create_model
from ferkit.models.widen import widen_vgg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="shipped name, run folder or checkpoint of a vgg")
    parser.add_argument("--width", type=int, required=True, help="the new width (channels of the first stage)")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    parser.add_argument("--noise", type=float, default=0.01, help="noise on the copies, relative (0: exact copy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="FER2013 csv: report the logit change on PublicTest")
    args = parser.parse_args()
    try:
        checkpoint = load_checkpoint(resolve_checkpoint(args.model))
        info = checkpoint.info
        if info.arch != "vgg":
            raise FerkitError(f"{args.model} is a {info.arch!r} net; only vgg nets can be widened")
        old = checkpoint.build_model()
        kwargs = {**info.arch_kwargs, "width": args.width, "num_classes": len(info.labels)}
        if args.width <= info.arch_kwargs.get("width", 32):
            raise FerkitError(f"--width {args.width} is not wider than the model's {info.arch_kwargs.get('width')}")
        new = widen_vgg(old, create_model("vgg", **kwargs), noise=args.noise, seed=args.seed).eval()
    except FerkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.data:
        from ferkit.evaluate.scoring import evaluation_data
        from ferkit.vision.crop import normalise

        x = normalise(evaluation_data(args.data, "PublicTest", info.labels).images)
        with torch.no_grad():  # in chunks: a whole split at once needs over 1 GB of activations
            before = torch.cat([old(x[i:i + 512]) for i in range(0, len(x), 512)])
            after = torch.cat([new(x[i:i + 512]) for i in range(0, len(x), 512)])
        agree = (before.argmax(1) == after.argmax(1)).float().mean()
        print(f"PublicTest logits: largest change {(before - after).abs().max():.4g}, arg-max agreement {agree:.4f}")
    kwargs.pop("num_classes")
    wide = ModelInfo(arch="vgg", arch_kwargs=kwargs, labels=info.labels, preprocess=info.preprocess, tta=info.tta,
                     temperature=info.temperature, config=info.config, parameters=count_parameters(new),
                     origin={"widened_from": str(args.model)})
    save_checkpoint(args.out, Checkpoint(wide, new.state_dict()))
    print(f"widened {args.model} to width {args.width} ({wide.parameters:,} parameters): {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
