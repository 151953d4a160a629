"""Evaluate a model on a data set split: metrics, JSON, confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path

from ferkit.data import FaceSet, load_dataset
from ferkit.errors import FerkitError
from ferkit.files import file_sha256
from ferkit.evaluate.metrics import classification_report
from ferkit.labels import FERPLUS_EMOTIONS


def evaluation_data(path: str | Path, split: str, label_names, clean: bool = False,
                    ferplus_test: str = "plurality", skip_bad_rows: bool = False, log=None) -> FaceSet:
    """The split to score, labelled with the same label set as the model (FER2013, FER+, or a folder set's own
    labels: its class folders must name the model's labels). ferplus_test: for a FER+ model, "plurality" (all faces
    with an emotion on top) or "strict" (the FER+ authors' majority protocol)."""
    labels = "ferplus" if tuple(label_names) == FERPLUS_EMOTIONS else "fer2013"
    if labels != "ferplus" and ferplus_test != "plurality":
        raise FerkitError(f"FER+ test protocol {ferplus_test!r}: not a FER+ model "
                          f"(it predicts {', '.join(label_names)})")
    faces = load_dataset(path, labels=labels, clean=clean, ferplus_test=ferplus_test, skip_bad_rows=skip_bad_rows,
                         log=log, class_names=label_names)
    if faces.usage is not None:
        faces = faces.split(split)
    if len(faces) == 0:
        raise FerkitError(f"{path}: split {faces.split_name(split)} has no images")
    if tuple(faces.label_names) != tuple(label_names):
        raise FerkitError(f"model labels {list(label_names)} do not match the data's {list(faces.label_names)}")
    return faces


def evaluate_classifier(classifier, faces: FaceSet, tta=None) -> dict:
    probs = classifier.predict_proba(faces.images, tta=tta)
    report = classification_report(faces.labels, probs.argmax(1), classifier.labels)
    report["tta"] = list(classifier.tta if tta is None else tta)
    return report


def trained_on(info) -> dict:
    """Where a model's weights learnt, from its checkpoint's ModelInfo: {"data": path, "split": the split it trained
    on, or None for a folder without split folders (all of it but the validation cut)}; {} when unknown."""
    if info is None:
        return {}
    known = dict(getattr(info, "trained_on", None) or {})
    config = info.config if isinstance(info.config, dict) else {}
    if not known and config.get("data"):  # a checkpoint from before trained_on: its config, relative to here
        known = {"data": str(Path(config["data"]).resolve()), "split": config.get("train_split", "Training")}
    return known


def _same_data(a: Path, b: Path) -> bool:
    if not (a.exists() and b.exists()):
        return False
    if a.resolve() == b.resolve():
        return True
    return a.is_file() and b.is_file() and a.stat().st_size == b.stat().st_size and file_sha256(a) == file_sha256(b)


def training_overlap_warning(info, path: str | Path, faces: FaceSet, split: str) -> str | None:
    """One line when the images scored include those the model (its checkpoint's ModelInfo) trained on: the same
    data set, and either no split folders (everything is scored) or the very split it trained on; None otherwise."""
    source = trained_on(info)
    if not source.get("data") or not _same_data(Path(source["data"]), Path(path)):
        return None
    if faces.usage is None:
        return (f"warning: {path} is the data set this model trained on and has no split folders, so this evaluation "
                "includes its training images (put held-out images in test/ beside train/ for an honest figure)")
    if source.get("split") == split:
        return (f"warning: {path} split {faces.split_name(split)} is the one this model trained on; "
                "the figure is not a held-out accuracy")
    return None
