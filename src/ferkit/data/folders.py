"""Folder-of-class-folders image sets (`angry/…` or `0/…6/`, optionally under train/val/test), as 48×48 crops."""

from __future__ import annotations

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


def _class_folders(root: Path) -> list[tuple[int, Path]]:
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            found.append((emotion_index(folder.name), folder))
        except KeyError:
            raise FerkitError(f"{folder}: folder name is not a class (expected {', '.join(EMOTIONS)} or 0..6)") \
                from None
    return found


def load_folder(root: str | Path, skip_bad_files: bool = True) -> FaceSet:
    """Reads every image; unreadable images are skipped and listed in info['bad_files'] (or raise), files with
    other suffixes in info['skipped_files'] (ferkit.data.report_skipped says so)."""
    root = Path(root)
    subfolders = [p for p in root.iterdir() if p.is_dir()]
    splits = {p.name.lower(): p for p in subfolders if p.name.lower() in SPLIT_FOLDERS}
    parts = [(SPLIT_FOLDERS[k], p) for k, p in sorted(splits.items())] if splits else [(None, root)]

    images, labels, usage, sources, bad, skipped = [], [], [], [], [], []
    for split, folder in parts:
        for label, class_folder in _class_folders(folder):
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
                labels.append(label)
                usage.append(USAGES.index(split) if split else 0)
                sources.append(str(file))
    if not images:
        raise FerkitError(f"{root}: no images found in class folders ({', '.join(EMOTIONS)} or 0..6)")
    return FaceSet(
        images=np.stack(images), labels=np.asarray(labels, np.int64), label_names=EMOTIONS,
        usage=np.asarray(usage, np.uint8) if splits else None, sources=sources,
        info={"bad_files": bad, "skipped_files": skipped},
    )
