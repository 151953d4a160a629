"""Expanding command-line inputs (files, folders, glob patterns, `@list.txt` manifests) into the paths to read."""

from __future__ import annotations

import glob
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.files import check_input_file
from ferkit.media.images import IMAGE_SUFFIXES
from ferkit.media.video import is_video_path

MAX_MANIFEST_BYTES = 1 << 30  # a billion bytes of paths is tens of millions of files: more is a mistake


def _has_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[") and not Path(text).exists()


def read_manifest(path: str | Path) -> list[str]:
    """The paths listed in a manifest, one per line; blank lines and lines starting with # are skipped, and a
    relative path is taken from the manifest's folder (so a list can travel with its files)."""
    path = check_input_file(path, MAX_MANIFEST_BYTES, "list of paths")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise FerkitError(f"{path}: not a text list of paths (it is not UTF-8)") from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [entry if Path(entry).is_absolute() else str(path.parent / entry) for entry in entries]


def with_manifests(inputs) -> list[str]:
    """The inputs with each `@list.txt` replaced by the paths it lists."""
    out: list[str] = []
    for item in inputs:
        text = str(item)
        out += read_manifest(text[1:]) if text.startswith("@") and len(text) > 1 else [text]
    return out


def expand_inputs(inputs) -> list[Path]:
    """Folders give their image files (recursively, sorted); patterns are globbed; other paths pass through
    unchanged so that a missing or non-image file is reported by whoever reads it."""
    paths: list[Path] = []
    for item in inputs:
        item = str(item)
        if _has_pattern(item):
            matches = sorted(glob.glob(item, recursive=True))
            paths.extend(Path(m) for m in matches if Path(m).suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                paths.append(Path(item))  # reported later as "no such file"
        elif Path(item).is_dir():
            paths.extend(sorted(p for p in Path(item).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(Path(item))
    return paths


def split_inputs(inputs) -> tuple[list[Path], list[Path]]:
    """(image paths, video paths) from files, folders, patterns and `@list.txt` manifests; files of unknown kinds
    count as images so that reading them reports the problem."""
    images, videos = [], []
    for text in with_manifests(inputs):
        if _has_pattern(text):
            matched_videos = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if is_video_path(m)]
            videos += matched_videos
            found = expand_inputs([text])
            if matched_videos and len(found) == 1 and not found[0].exists():
                continue  # the pattern matched videos only
            images += found
        elif Path(text).is_dir():
            images += expand_inputs([text])
            videos += sorted(p for p in Path(text).rglob("*") if p.is_file() and is_video_path(p))
        elif is_video_path(text):
            videos.append(Path(text))
        else:
            images.append(Path(text))
    return images, videos
