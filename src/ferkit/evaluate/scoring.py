"""Evaluate a model on a data set split: metrics, JSON, confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path

from ferkit.data import FaceSet, load_dataset
from ferkit.errors import FerkitError
from ferkit.evaluate.metrics import classification_report
from ferkit.labels import FERPLUS_EMOTIONS


def evaluation_data(path: str | Path, split: str, label_names, clean: bool = False,
                    ferplus_test: str = "plurality", skip_bad_rows: bool = False, log=None) -> FaceSet:
    """The split to score, labelled with the same label set as the model (FER2013 or FER+). ferplus_test: for a FER+
    model, "plurality" (all faces with an emotion on top) or "strict" (the FER+ authors' majority protocol)."""
    labels = "ferplus" if tuple(label_names) == FERPLUS_EMOTIONS else "fer2013"
    if labels != "ferplus" and ferplus_test != "plurality":
        raise FerkitError(f"FER+ test protocol {ferplus_test!r}: not a FER+ model "
                          f"(it predicts {', '.join(label_names)})")
    faces = load_dataset(path, labels=labels, clean=clean, ferplus_test=ferplus_test, skip_bad_rows=skip_bad_rows,
                         log=log)
    if faces.usage is not None:
        faces = faces.split(split)
    if len(faces) == 0:
        raise FerkitError(f"{path}: split {split} has no images")
    if tuple(faces.label_names) != tuple(label_names):
        raise FerkitError(f"model labels {list(label_names)} do not match the data's {list(faces.label_names)}")
    return faces


def evaluate_classifier(classifier, faces: FaceSet, tta=None) -> dict:
    probs = classifier.predict_proba(faces.images, tta=tta)
    report = classification_report(faces.labels, probs.argmax(1), classifier.labels)
    report["tta"] = list(classifier.tta if tta is None else tta)
    return report
