"""Score models alone and as an ensemble (mean of their probabilities) on PublicTest and PrivateTest.

    python experiments/ensemble_eval.py default runs/vgg32_ba --data ../shared/data/fer2013/fer2013.csv.gz
    python experiments/ensemble_eval.py default fast runs/a runs/b --data ... --subsets    # choose members

Each member uses its own TTA and temperature, as `ferkit evaluate` does, and as an ensemble made by
`ferkit ensemble` of the same members (with that TTA) does. Decide on the PublicTest column; the PrivateTest
column is for reporting what was decided. `--subsets` scores every combination of members (each alone too, as
the baseline) on PublicTest only, so the choice is made before any PrivateTest figure is seen.

`--views` sets what each member sees: `own` (its own TTA, the default), `none` (the face once), or `split` (one
view each, alternating: the first member sees the face as is, the second its mirror image, and so on). Two
members under `split` cost what one member with flip TTA costs, which is the price the speed rule allows `default`.
"""

from __future__ import annotations

import argparse
from itertools import combinations

import numpy as np

from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.evaluate.metrics import classification_report
from ferkit.evaluate.scoring import evaluation_data


def member_probabilities(classifiers, images: np.ndarray, views: str) -> list[np.ndarray]:
    if views == "own":
        return [c.predict_proba(images) for c in classifiers]
    mirrored = np.ascontiguousarray(images[..., ::-1])  # N×48×48: the last axis is the width
    return [c.predict_proba(mirrored if views == "split" and i % 2 else images, tta=[])
            for i, c in enumerate(classifiers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("members", nargs="+", help="shipped names, run folders or checkpoints")
    parser.add_argument("--data", required=True)
    parser.add_argument("--subsets", action="store_true", help="every combination of members, PublicTest only")
    parser.add_argument("--views", choices=["own", "none", "split"], default="own",
                        help="own: each member's TTA; none: one plain view; split: members alternate plain/mirrored")
    args = parser.parse_args()
    classifiers = [TorchClassifier.load(m) for m in args.members]
    labels = classifiers[0].labels
    if any(c.labels != labels for c in classifiers):
        raise SystemExit("members predict different label sets")
    if args.subsets:
        faces = evaluation_data(args.data, "PublicTest", labels)
        probs = member_probabilities(classifiers, faces.images, args.views)
        rows = []
        for size in range(1, len(probs) + 1):
            for chosen in combinations(range(len(probs)), size):
                predicted = np.mean([probs[i] for i in chosen], axis=0).argmax(1)
                rows.append((float((predicted == faces.labels).mean()), [args.members[i] for i in chosen]))
        print("| members | PublicTest |\n| --- | --- |")
        for accuracy, names in sorted(rows, key=lambda row: -row[0]):
            print(f"| {' + '.join(names)} | {accuracy:.4f} |")
        return
    rows = {name: {} for name in [*args.members, "ensemble"]}
    for split in ("PublicTest", "PrivateTest"):
        faces = evaluation_data(args.data, split, labels)
        probs = member_probabilities(classifiers, faces.images, args.views)
        for name, p in [*zip(args.members, probs), ("ensemble", np.mean(probs, axis=0))]:
            report = classification_report(faces.labels, p.argmax(1), labels)
            rows[name][split] = (report["accuracy"], report["macro_f1"])
    print("| model | PublicTest | PrivateTest | PrivateTest macro-F1 |\n| --- | --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['PublicTest'][0]:.4f} | {row['PrivateTest'][0]:.4f} | {row['PrivateTest'][1]:.4f} |")


if __name__ == "__main__":
    main()
