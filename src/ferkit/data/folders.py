"""Folder-of-class-folders image sets (`angry/…`, `0/…6/` or any names: `focused/…`, `bored/…`), optionally under
train/val/test, as 48×48 crops.

The labels are the class folders' names. Folders named only with FER2013's seven expressions (or 0..6) keep
FER2013's seven labels in its order, so such a set trains and evaluates as FER2013 does; any other names become the
set's own labels, sorted (case aside, numbers by value). A model's labels can be given instead (`class_names`):
then every folder must name one of them (evaluation scores a folder set with the model's labels and indices).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ferkit.data.faceset import FaceSet
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS, USAGES, emotion_index
from ferkit.media.images import IMAGE_SUFFIXES, read_image
from ferkit.vision.crop import face_crop

SPLIT_FOLDERS = {"train": "Training", "training": "Training", "val": "PublicTest", "valid": "PublicTest",
                 "validation": "PublicTest", "publictest": "PublicTest", "test": "PrivateTest",
                 "privatetest": "PrivateTest"}


def _is_system_folder(folder: Path) -> bool:
    """Folders that the system or an unzip made, not the user: .ipynb_checkpoints, .git, __MACOSX."""
    return folder.name.startswith(".") or folder.name == "__MACOSX"


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_system_folder(p))


def _natural_key(name: str) -> list:
    """Sort key: case aside, and numbers by value (class 2 before class 10)."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", name)]


def folder_labels(names: list[str], class_names=None) -> tuple[tuple, dict[str, int]]:
    """(labels, folder name → label index) for a set's class folder names. class_names: a model's labels that the
    folders must map onto, or None for the set's own (FER2013's seven when every name is one of them)."""
    if class_names is not None:
        wanted = tuple(class_names)
        if wanted == EMOTIONS:
            index = {}
            for name in names:
                try:
                    index[name] = emotion_index(name)
                except KeyError:
                    raise FerkitError(f"class folder {name!r} is not one of the model's labels "
                                      f"({', '.join(wanted)} or 0..6)") from None
            return wanted, index
        own = {label.casefold(): i for i, label in enumerate(wanted)}
        unknown = [name for name in names if name.casefold() not in own]
        if unknown:
            raise FerkitError(f"class folder(s) {', '.join(map(repr, unknown))} not among the model's labels "
                              f"({', '.join(wanted)})")
        return wanted, {name: own[name.casefold()] for name in names}
    try:
        return EMOTIONS, {name: emotion_index(name) for name in names}
    except KeyError:
        pass
    labels: list[str] = []
    for name in sorted(names, key=lambda n: (_natural_key(n), n)):
        if name.casefold() not in {label.casefold() for label in labels}:  # Focused/ and focused/: one class
            labels.append(name)
    if len(labels) < 2:
        raise FerkitError(f"one class folder ({labels[0]}/): a classifier needs at least two classes, one folder each")
    by_key = {label.casefold(): i for i, label in enumerate(labels)}
    return tuple(labels), {name: by_key[name.casefold()] for name in names}


def load_folder(root: str | Path, skip_bad_files: bool = True, class_names=None) -> FaceSet:
    """Reads every image; unreadable images are skipped and listed in info['bad_files'] (or raise), files with
    other suffixes in info['skipped_files'] (ferkit.data.report_skipped says so). class_names: see folder_labels."""
    root = Path(root)
    subfolders = _subfolders(root)
    splits = {p.name.lower(): p for p in subfolders if p.name.lower() in SPLIT_FOLDERS}
    parts = [(SPLIT_FOLDERS[k], p) for k, p in sorted(splits.items())] if splits else [(None, root)]
    class_folders = [(split, folder) for split, part in parts for folder in _subfolders(part)]
    if not class_folders:
        raise FerkitError(f"{root}: no images found: it has no class folders (one folder of images per class: "
                          "angry/, happy/, ... or names of your own)")
    labels_of_set, index = folder_labels(sorted({folder.name for _, folder in class_folders}), class_names)

    images, labels, usage, sources, bad, skipped = [], [], [], [], [], []
    for split, class_folder in class_folders:
        for file in sorted(class_folder.rglob("*")):
            if file.is_dir() or file.name.startswith("."):  # hidden files: the system's, not the user's
                continue
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(f"{file}: not an image file name ({', '.join(sorted(IMAGE_SUFFIXES))})")
                continue
            try:
                images.append(face_crop(read_image(file)))
            except FerkitError as exc:
                if not skip_bad_files:
                    raise
                bad.append(str(exc))
                continue
            labels.append(index[class_folder.name])
            usage.append(USAGES.index(split) if split else 0)
            sources.append(str(file))
    if not images:
        raise FerkitError(f"{root}: no images found in its class folders ({', '.join(labels_of_set)})")
    return FaceSet(
        images=np.stack(images), labels=np.asarray(labels, np.int64), label_names=labels_of_set,
        usage=np.asarray(usage, np.uint8) if splits else None, sources=sources,
        info={"bad_files": bad, "skipped_files": skipped, "folder": True},
    )
