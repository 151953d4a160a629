"""One docs/results-log.md row for a run: evaluates its best checkpoint on Training, PublicTest and PrivateTest.

    python tools/results_row.py runs/vgg32 --data ../shared/data/fer2013/fer2013.csv.gz --command "ferkit train ..."

The checkpoint was selected on PublicTest by the training run; PrivateTest is only reported here.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess

import torch

from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.evaluate.scoring import evaluate_classifier, evaluation_data
from ferkit.labels import FERPLUS_TESTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--command", required=True, help="the exact training command")
    parser.add_argument("--tta", default=None, choices=["none", "flip"])
    parser.add_argument("--ferplus-test", default="plurality", choices=FERPLUS_TESTS,
                        help="for a FER+ run: score every face under its top vote (plurality) or only the faces the "
                             "FER+ authors' protocol keeps (strict)")
    parser.add_argument("--skip-training", action="store_true",
                        help="leave the Training column out (scoring 28,709 faces takes long for big nets on a CPU)")
    args = parser.parse_args()
    classifier = TorchClassifier.load(args.run)
    tta = None if args.tta is None else ([] if args.tta == "none" else [args.tta])
    scores = {}
    splits = ("PublicTest", "PrivateTest") if args.skip_training else ("Training", "PublicTest", "PrivateTest")
    for split in splits:
        faces = evaluation_data(args.data, split, classifier.labels, ferplus_test=args.ferplus_test)
        scores[split] = evaluate_classifier(classifier, faces, tta=tta)
    info = classifier.info
    config = info.config
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    minutes = info.elapsed_s / 60
    threads = config.get("threads") or torch.get_num_threads()
    cpu = f"{os.cpu_count()}-core {platform.machine()}, {threads} training thread{'s' if threads > 1 else ''}"
    tta_used = ",".join(scores["PrivateTest"]["tta"]) or "none"
    budget = config.get("time_budget_min", 0)
    epochs = f"{info.epoch} of a {budget:g}-min budget" if budget else f"{info.epoch}/{config['epochs']}"
    training = f"{scores['Training']['accuracy']:.4f}" if "Training" in scores else "—"
    print(f"| {config['model']} | {info.parameters:,} | 48×48×1 | {epochs} | "
          f"{config['batch_size']} | {config['optimizer']} {config['lr']} {config['schedule']} | {minutes:.0f} min | "
          f"{training} | {scores['PublicTest']['accuracy']:.4f} | "
          f"{scores['PrivateTest']['accuracy']:.4f} | {scores['PrivateTest']['macro_f1']:.4f} | {tta_used} | "
          f"{commit} | {cpu} | `{args.command}` |")


if __name__ == "__main__":
    main()
