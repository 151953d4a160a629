"""Command-line inputs into paths: folders, patterns, and @LIST.txt manifests (as `ferkit predict` and `ferkit batch`
take them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferkit.errors import FerkitError
from ferkit.media.inputs import read_manifest, split_inputs


@pytest.fixture
def files(tmp_path) -> Path:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/one.jpg", "a/deep/two.png", "a/clip.mp4", "a/notes.txt", "b.mp4", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_a_folder_gives_its_images_and_videos_recursively(files):
    images, videos = split_inputs([files / "a"])
    assert [p.relative_to(files).as_posix() for p in images] == ["a/deep/two.png", "a/one.jpg"]
    assert [p.relative_to(files).as_posix() for p in videos] == ["a/clip.mp4"]


def test_a_pattern_of_videos_only_adds_no_missing_image(files):
    images, videos = split_inputs([str(files / "a" / "*.jpg"), str(files / "*.mp4")])
    assert [p.name for p in images] == ["one.jpg"] and [p.name for p in videos] == ["b.mp4"]


def test_a_manifest_lists_paths_relative_to_itself(files):
    (files / "list.txt").write_text("\ufeff# archive of 2026\na/one.jpg\n\n  b.mp4  \n" + str(files / "c.webp") + "\n")
    assert read_manifest(files / "list.txt") == [str(files / "a/one.jpg"), str(files / "b.mp4"), str(files / "c.webp")]
    images, videos = split_inputs([f"@{files / 'list.txt'}", files / "a" / "deep"])
    assert [p.name for p in images] == ["one.jpg", "c.webp", "two.png"] and [p.name for p in videos] == ["b.mp4"]


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"\xff\xfe\x00bad", "not UTF-8")])
def test_a_bad_manifest_is_one_clear_error(files, content, message):
    if content is not None:
        (files / "list.txt").write_bytes(content)
    with pytest.raises(FerkitError, match=message):
        split_inputs([f"@{files / 'list.txt'}"])
