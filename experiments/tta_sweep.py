"""Score shifted-view TTA variants (a 48×48 stand-in for ten-crop) against flip, to choose one on PublicTest.

    python experiments/tta_sweep.py default --data ../shared/data/fer2013/fer2013.csv.gz --split PublicTest

Each variant averages softmax(logits / T) over its views (T: the model's stored temperature), as `ferkit evaluate`
does. Views move the face by whole pixels with the border repeated, with the `shift` mode's own function.
"""

from __future__ import annotations

import argparse

import torch

from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.classifier.torch_inference import shifted
from ferkit.evaluate.scoring import evaluation_data
from ferkit.vision.crop import normalise

VARIANTS = {
    "none": [(0, 0)],
    "shift 2 px": [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)],
    "shift 3 px": [(0, 0), (3, 0), (-3, 0), (0, 3), (0, -3)],
    "diagonal 2 px": [(0, 0), (2, 2), (-2, 2), (2, -2), (-2, -2)],
}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="shipped name, run folder or checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="PublicTest")
    args = parser.parse_args()
    classifier = TorchClassifier.load(args.model)
    model = classifier.model.eval()
    faces = evaluation_data(args.data, args.split, classifier.labels)
    x = normalise(faces.images)
    probs = {}
    for offset in sorted({o for offsets in VARIANTS.values() for o in offsets}):
        for mirrored in (False, True):
            view = shifted(x, *offset)
            view = torch.flip(view, dims=[3]) if mirrored else view
            probs[offset, mirrored] = torch.cat([torch.softmax(model(view[i:i + 512]) / classifier.temperature, 1)
                                                 for i in range(0, len(view), 512)])
    for name, offsets in VARIANTS.items():
        for mirrors in ((False,), (False, True)):
            mean = sum(probs[o, m] for o in offsets for m in mirrors) / (len(offsets) * len(mirrors))
            accuracy = (mean.argmax(1).numpy() == faces.labels).mean()
            label = name + (" + flip" if len(mirrors) == 2 else "")
            print(f"{args.model}\t{args.split}\t{label:<22}\t{len(offsets) * len(mirrors):>2} views\t{accuracy:.4f}")


if __name__ == "__main__":
    main()
