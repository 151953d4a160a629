"""FER2013 csv reader: formats, splits, malformed rows (named by line), skipping, the cache."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from conftest import DEFAULT_USAGE, fer_line, pixel_text

import ferkit.data.fer2013 as fer2013_module
from ferkit.data import cache, load_dataset
from ferkit.data.fer2013 import load_fer2013, parse_fer2013
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS, USAGES

TRAINING, PUBLIC, PRIVATE = (USAGES.index(u) for u in USAGES)


def expected_usage(n):
    return np.array([USAGES.index(DEFAULT_USAGE[i % len(DEFAULT_USAGE)]) for i in range(n)])


def check_faces(faces, rows, positions=None):
    """faces holds exactly rows[positions] (all rows by default), in order, with default usages."""
    positions = list(range(len(rows))) if positions is None else list(positions)
    assert len(faces) == len(positions)
    assert faces.images.dtype == np.uint8 and faces.images.shape == (len(positions), 48, 48)
    np.testing.assert_array_equal(faces.images, np.stack([rows[p][1] for p in positions]))
    np.testing.assert_array_equal(faces.labels, [rows[p][0] for p in positions])
    assert faces.labels.dtype == np.int64
    np.testing.assert_array_equal(faces.usage, expected_usage(len(rows))[positions])
    np.testing.assert_array_equal(faces.rows, positions)
    assert faces.label_names == EMOTIONS
    assert faces.num_classes == 7


# ------------------------------------------------------------------------------------------- good files


@pytest.mark.parametrize("name", ["small.csv", "small.csv.gz"])
def test_parse_plain_and_gzip(tmp_path, fer_rows, write_fer_csv, name):
    path = write_fer_csv(tmp_path / name, fer_rows)
    faces = load_fer2013(path, use_cache=False)
    check_faces(faces, fer_rows)
    assert faces.info["bad_rows"] == 0 and faces.info["bad_lines"] == []


@pytest.mark.parametrize("style", [
    dict(newline="\r\n"),
    dict(trailing_blank=True),
    dict(newline="\r\n", trailing_blank=True),
    dict(quote=True),
    dict(quote=True, newline="\r\n", header='"emotion","pixels","Usage"'),
])
def test_csv_variants_parse_identically(tmp_path, fer_rows, write_fer_csv, style):
    path = write_fer_csv(tmp_path / "variant.csv", fer_rows, **style)
    check_faces(load_fer2013(path, use_cache=False), fer_rows)


def test_columns_in_another_order(tmp_path, fer_rows):
    lines = ["Usage,pixels,emotion"] + [f"{u},{pixel_text(p)},{e}" for (e, p), u in zip(fer_rows, DEFAULT_USAGE)]
    path = tmp_path / "reordered.csv"
    path.write_text("\n".join(lines) + "\n")
    check_faces(load_fer2013(path, use_cache=False), fer_rows)


def test_splits_and_class_counts(tmp_path, fer_rows, write_fer_csv):
    faces = load_fer2013(write_fer_csv(tmp_path / "s.csv", fer_rows), use_cache=False)
    sizes = {name: len(faces.split(name)) for name in USAGES}
    assert sizes == {"Training": 10, "PublicTest": 3, "PrivateTest": 3}
    public = faces.split("PublicTest")
    np.testing.assert_array_equal(public.rows, [10, 11, 12])
    np.testing.assert_array_equal(public.images, np.stack([img for _, img in fer_rows[10:13]]))
    assert (public.usage == PUBLIC).all()
    train_labels = [e for e, _ in fer_rows[:10]]
    np.testing.assert_array_equal(faces.split("Training").class_counts(), np.bincount(train_labels, minlength=7))
    with pytest.raises(ValueError, match="unknown split"):
        faces.split("Validation")


def test_load_dataset_reads_csv(tmp_path, fer_rows, write_fer_csv):
    path = write_fer_csv(tmp_path / "d.csv.gz", fer_rows)
    check_faces(load_dataset(path), fer_rows)
    with pytest.raises(FerkitError, match="no such file"):
        load_dataset(tmp_path / "missing.csv")


def test_missing_pixels_column_is_line_1(tmp_path):
    path = tmp_path / "bad_header.csv"
    path.write_text("emotion,image,Usage\n0,1 2 3,Training\n")
    with pytest.raises(FerkitError, match=r"line 1\b.*pixels"):
        load_fer2013(path, use_cache=False)


def test_corrupt_gzip_is_a_ferkit_error(tmp_path):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    with pytest.raises(FerkitError, match="cannot read"):
        load_fer2013(path, use_cache=False)


# ------------------------------------------------------------------------------------------- bad rows

BAD_POSITION = 4  # data row 4 = file line 6 (line 1 is the header)
BAD_LINE = BAD_POSITION + 2


def _bad_lines(fer_rows):
    emotion, pixels = fer_rows[BAD_POSITION]
    values = pixel_text(pixels).split()
    usage = DEFAULT_USAGE[BAD_POSITION]
    return {
        "too_few_fields": f"{emotion},{' '.join(values)}",
        "too_many_fields": f"{emotion},{' '.join(values)},{usage},extra",
        "non_numeric_pixel": fer_line(emotion, " ".join(values[:100] + ["abc"] + values[101:]), usage),
        "decimal_pixel": fer_line(emotion, " ".join(values[:7] + ["1.5"] + values[8:]), usage),
        "2303_pixels": fer_line(emotion, " ".join(values[:-1]), usage),
        "2305_pixels": fer_line(emotion, " ".join(values + ["0"]), usage),
        "value_256": fer_line(emotion, " ".join(values[:-1] + ["256"]), usage),
        "negative_value": fer_line(emotion, " ".join(["-1"] + values[1:]), usage),
        "emotion_9": fer_line(9, pixels, usage),
        "emotion_text": fer_line("happy", pixels, usage),
        "usage_unknown": fer_line(emotion, pixels, "Validation"),
        "usage_lowercase": fer_line(emotion, pixels, "training"),
    }


BAD_KINDS = ["too_few_fields", "too_many_fields", "non_numeric_pixel", "decimal_pixel", "2303_pixels",
             "2305_pixels", "value_256", "negative_value", "emotion_9", "emotion_text", "usage_unknown",
             "usage_lowercase"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_row_names_its_line(tmp_path, fer_rows, write_fer_csv, kind):
    path = write_fer_csv(tmp_path / f"{kind}.csv", fer_rows, lines={BAD_POSITION: _bad_lines(fer_rows)[kind]})
    with pytest.raises(FerkitError) as caught:
        load_fer2013(path, use_cache=False)
    message = str(caught.value)
    assert re.search(rf"\bline {BAD_LINE}\b", message), message
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_bad_row_skipped_and_counted(tmp_path, fer_rows, write_fer_csv, kind, newline):
    path = write_fer_csv(tmp_path / f"{kind}.csv", fer_rows, newline=newline,
                         lines={BAD_POSITION: _bad_lines(fer_rows)[kind]})
    faces = load_fer2013(path, skip_bad_rows=True, use_cache=False)
    assert faces.info["bad_rows"] == 1
    assert faces.info["bad_lines"] == [BAD_LINE]
    check_faces(faces, fer_rows, [p for p in range(len(fer_rows)) if p != BAD_POSITION])


def test_several_bad_rows_of_different_kinds(tmp_path, fer_rows, write_fer_csv):
    emotion, pixels = fer_rows[0]
    values = pixel_text(pixels).split()
    bad = {
        1: fer_line(emotion, " ".join(values[:-1] + ["300"]), "Training"),      # caught in the pixel pass
        3: fer_line(8, pixels, "Training"),                                      # caught in the row pass
        7: fer_line(emotion, " ".join(values[:5] + ["x"] + values[6:]), "Training"),
        12: fer_line(emotion, " ".join(values[:2000]), "PublicTest"),
    }
    path = write_fer_csv(tmp_path / "several.csv", fer_rows, lines=bad)
    with pytest.raises(FerkitError, match=r"line (3|5|9|14)\b"):
        load_fer2013(path, use_cache=False)
    faces = load_fer2013(path, skip_bad_rows=True, use_cache=False)
    assert faces.info["bad_rows"] == 4
    assert faces.info["bad_lines"] == [3, 5, 9, 14]
    check_faces(faces, fer_rows, [p for p in range(len(fer_rows)) if p not in bad])


def test_blank_line_in_the_middle_is_not_a_row(tmp_path, fer_rows, write_fer_csv):
    text = write_fer_csv(tmp_path / "a.csv", fer_rows[:3]).read_text().splitlines()
    path = tmp_path / "blank.csv"
    path.write_text("\n".join(text[:2] + [""] + text[2:]) + "\n")
    faces = load_fer2013(path, use_cache=False)
    assert len(faces) == 3 and faces.info["bad_rows"] == 0
    bad = tmp_path / "blank_then_bad.csv"
    bad.write_text("\n".join(text[:2] + ["", "0,1 2 3,Training"] + text[2:]) + "\n")
    with pytest.raises(FerkitError, match=r"\bline 4\b"):
        load_fer2013(bad, use_cache=False)


def test_parse_without_emotion_or_usage_columns(fer_rows):
    data = ("pixels\n" + "\n".join(pixel_text(p) for _, p in fer_rows[:3]) + "\n").encode()
    arrays = parse_fer2013(data)
    assert (arrays["labels"] == -1).all()
    assert (arrays["usage"] == TRAINING).all()
    np.testing.assert_array_equal(arrays["images"], np.stack([p for _, p in fer_rows[:3]]))


# ------------------------------------------------------------------------------------------- cache


def _cache_files(folder, path):
    key = cache.file_sha256(path)[:20]
    return sorted(folder.glob(f"fer2013-{key}*.npz"))


def _forbid_parsing(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the csv was parsed again instead of read from the cache")
    monkeypatch.setattr(fer2013_module, "parse_fer2013", boom)


def _count_parsing(monkeypatch):
    calls = []
    real = fer2013_module.parse_fer2013

    def counting(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else None)
        return real(*args, **kwargs)
    monkeypatch.setattr(fer2013_module, "parse_fer2013", counting)
    return calls


def test_cache_second_load_is_equal_and_not_parsed(tmp_path, fer_rows, write_fer_csv, ferkit_cache, monkeypatch):
    path = write_fer_csv(tmp_path / "cached.csv.gz", fer_rows)
    assert _cache_files(ferkit_cache, path) == []
    first = load_fer2013(path)
    files = _cache_files(ferkit_cache, path)
    assert len(files) == 1 and files[0].parent == ferkit_cache and files[0].stat().st_size > 0
    _forbid_parsing(monkeypatch)
    second = load_fer2013(path)
    for name in ("images", "labels", "usage", "rows"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert getattr(first, name).dtype == getattr(second, name).dtype
    assert second.info == first.info
    check_faces(second, fer_rows)


def test_cache_is_keyed_by_content(tmp_path, fer_rows, write_fer_csv, monkeypatch):
    path = write_fer_csv(tmp_path / "changing.csv", fer_rows)
    load_fer2013(path)
    changed = list(fer_rows)
    changed[0] = ((changed[0][0] + 1) % 7, changed[0][1])
    write_fer_csv(path, changed)  # same name, new content: must not be served from the old cache entry
    faces = load_fer2013(path)
    check_faces(faces, changed)


def test_skip_bad_rows_has_its_own_cache_entry(tmp_path, fer_rows, write_fer_csv):
    path = write_fer_csv(tmp_path / "bad.csv", fer_rows, lines={BAD_POSITION: _bad_lines(fer_rows)["value_256"]})
    skipped = load_fer2013(path, skip_bad_rows=True)
    assert skipped.info["bad_lines"] == [BAD_LINE]
    again = load_fer2013(path, skip_bad_rows=True)  # from the cache: the counts come back too
    assert again.info["bad_rows"] == 1 and again.info["bad_lines"] == [BAD_LINE]
    with pytest.raises(FerkitError, match=rf"\bline {BAD_LINE}\b"):
        load_fer2013(path)  # a strict load must not be answered by the skipping load's cache


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "flipped_byte"])
def test_damaged_cache_is_ignored(tmp_path, fer_rows, write_fer_csv, ferkit_cache, monkeypatch, damage):
    path = write_fer_csv(tmp_path / f"damaged-{damage}.csv", fer_rows)
    load_fer2013(path)
    [cached] = _cache_files(ferkit_cache, path)
    raw = cached.read_bytes()
    broken = {
        "garbage": b"this is not an npz file" * 20,
        "empty": b"",
        "truncated": raw[: len(raw) // 2],
        "flipped_byte": raw[:600] + bytes([raw[600] ^ 0xFF]) + raw[601:],
    }[damage]
    cached.write_bytes(broken)
    calls = _count_parsing(monkeypatch)
    faces = load_fer2013(path)
    assert len(calls) == 1, "a damaged cache file must be ignored and the csv parsed again"
    check_faces(faces, fer_rows)
    assert cache.load(cached) is not None  # and the cache was written afresh
    load_fer2013(path)
    assert len(calls) == 1


def test_use_cache_false_writes_nothing(tmp_path, fer_rows, write_fer_csv, ferkit_cache):
    path = write_fer_csv(tmp_path / "nocache.csv", fer_rows[:5])
    load_fer2013(path, use_cache=False)
    assert _cache_files(ferkit_cache, path) == []


# ------------------------------------------------------------------------------------------- real file

TRAINING_CLASS_COUNTS = [3995, 436, 4097, 7215, 4830, 3171, 4965]


@pytest.mark.slow
def test_full_real_file(fer2013_path, fer2013_full, monkeypatch):
    faces = fer2013_full
    assert len(faces) == 35887
    assert faces.info["bad_rows"] == 0
    assert {name: len(faces.split(name)) for name in USAGES} == {
        "Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert faces.split("Training").class_counts().tolist() == TRAINING_CLASS_COUNTS
    assert faces.split("PublicTest").class_counts().tolist() == [467, 56, 496, 895, 653, 415, 607]
    assert faces.split("PrivateTest").class_counts().tolist() == [491, 55, 528, 879, 594, 416, 626]
    np.testing.assert_array_equal(faces.rows, np.arange(35887))
    # the README's split boundaries: rows 0–28708 Training, 28709–32297 PublicTest, then PrivateTest
    assert (faces.usage[:28709] == TRAINING).all() and (faces.usage[28709:32298] == PUBLIC).all()
    assert (faces.usage[32298:] == PRIVATE).all()

    _forbid_parsing(monkeypatch)
    start = time.perf_counter()
    again = load_fer2013(fer2013_path)
    elapsed = time.perf_counter() - start
    print(f"cached reload of the full FER2013 file: {elapsed:.3f} s")
    assert elapsed < 1.0
    np.testing.assert_array_equal(again.images, faces.images)
    np.testing.assert_array_equal(again.labels, faces.labels)
    np.testing.assert_array_equal(again.usage, faces.usage)


def test_real_first_rows_match_full_file(fer2013_full, fer_rows):
    for position, (emotion, pixels) in enumerate(fer_rows):
        assert fer2013_full.labels[position] == emotion
        np.testing.assert_array_equal(fer2013_full.images[position], pixels)


def test_a_long_first_parse_says_so_once_and_a_cached_load_is_silent(tmp_path, fer_rows, write_fer_csv, monkeypatch,
                                                                      capsys):
    path = write_fer_csv(tmp_path / "announce.csv.gz", fer_rows)
    monkeypatch.setattr(fer2013_module, "ANNOUNCE_AFTER_S", 0.0)  # as if this small file were the 90 MiB one
    load_fer2013(path)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("parsing announce.csv.gz the first time (up to about 5 s; ")
    assert str(cache.cache_path("fer2013", path).parent) in lines[0] or "~/" in lines[0]
    load_fer2013(path)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(fer2013_module, "ANNOUNCE_AFTER_S", 3.0)
    load_fer2013(write_fer_csv(tmp_path / "small.csv", fer_rows), use_cache=False)  # a small csv: no line
    assert capsys.readouterr().err == ""
