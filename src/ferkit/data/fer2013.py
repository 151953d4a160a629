"""FER2013 csv reader (`emotion,pixels,Usage`, plain or .gz): vectorised parse, clear errors, cached."""

from __future__ import annotations

import gzip
import os
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np

from ferkit.data import cache
from ferkit.data.faceset import FaceSet
from ferkit.errors import FerkitError
from ferkit.files import check_input_file
from ferkit.labels import EMOTIONS, USAGES

SIDE = 48
PIXELS = SIDE * SIDE
_CACHE_VERSION = "v1"
MAX_CSV_BYTES = 2 * 2**30  # the real FER2013 csv is 287 MiB (90 MiB gzipped); also the bound once unzipped
BOM = b"\xef\xbb\xbf"  # what Excel's "CSV UTF-8" puts before the header
# Parse speed on a slow machine, to say how long a first load may take: the real csv (90 MiB gzipped) was seen to
# take 26 s on a shared 2-core machine, 7 s on an idle one (hence "up to").
PARSE_BYTES_PER_S = {".gz": 3.5e6, "": 11e6}
ANNOUNCE_AFTER_S = 3.0  # a parse expected to take longer than this says so first, so a long silence is explained


def read_bytes(path: str | os.PathLike) -> bytes:
    """A csv's bytes (unzipped for .gz), without a leading UTF-8 byte order mark."""
    path = check_input_file(path, MAX_CSV_BYTES, "csv file")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                data = handle.read(MAX_CSV_BYTES + 1)
            if len(data) > MAX_CSV_BYTES:
                raise FerkitError(f"{path}: unzips to over {MAX_CSV_BYTES / 2**30:g} GiB, more than a csv of faces")
        else:
            data = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise FerkitError(f"{path}: cannot read ({exc})") from None
    return data[len(BOM):] if data.startswith(BOM) else data


def load_fer2013(path: str | os.PathLike, skip_bad_rows: bool = False, use_cache: bool = True) -> FaceSet:
    """All rows of a FER2013-format csv. Bad rows raise FerkitError naming the line, or are skipped and counted."""
    path = check_input_file(path, MAX_CSV_BYTES, "csv file")
    cached_at = cache.cache_path("fer2013", path, f"{_CACHE_VERSION}{'-skip' if skip_bad_rows else ''}")
    if use_cache and (arrays := cache.load(cached_at)) is not None:
        return _faceset(arrays)
    _announce_parse(path, cached_at.parent if use_cache else None)
    arrays = parse_fer2013(read_bytes(path), str(path), skip_bad_rows)
    if use_cache:
        cache.save(cached_at, arrays)
    return _faceset(arrays)


def _announce_parse(path: Path, cache_folder: Path | None) -> None:
    """One line on stderr before a parse long enough to look like a hang (the first load of the real csv)."""
    seconds = path.stat().st_size / PARSE_BYTES_PER_S[".gz" if path.suffix == ".gz" else ""]
    if seconds < ANNOUNCE_AFTER_S:
        return
    about = f"up to about {max(5, round(seconds / 5) * 5)} s"
    if cache_folder is None:
        print(f"parsing {path.name} ({about})", file=sys.stderr, flush=True)
        return
    home = Path.home()
    shown = f"~/{cache_folder.relative_to(home)}" if cache_folder.is_relative_to(home) else str(cache_folder)
    print(f"parsing {path.name} the first time ({about}; later loads use the cache in {shown})", file=sys.stderr,
          flush=True)


def _faceset(arrays: dict) -> FaceSet:
    return FaceSet(
        images=arrays["images"], labels=arrays["labels"].astype(np.int64), label_names=EMOTIONS,
        usage=arrays["usage"], rows=arrays["rows"].astype(np.int64),
        info={"bad_rows": int(arrays["bad_rows"]), "bad_lines": arrays["bad_lines"].tolist()},
    )


class _Rows:
    """Collects good rows and bad lines during a parse."""

    def __init__(self, name: str, skip_bad_rows: bool):
        self.name, self.skip = name, skip_bad_rows
        self.labels, self.usage, self.pixels, self.rows, self.lines = [], [], [], [], []
        self.bad_lines: list[int] = []

    def bad(self, lineno: int, why: str) -> None:
        if not self.skip:
            raise FerkitError(f"{self.name}, line {lineno}: {why} (use --skip-bad-rows to skip such rows)")
        self.bad_lines.append(lineno)


def parse_fer2013(data: bytes, name: str = "<csv>", skip_bad_rows: bool = False) -> dict:
    lines = data.split(b"\n")
    columns = [c.strip().strip(b'"').decode("utf-8", "replace") for c in lines[0].rstrip(b"\r").split(b",")]
    if "pixels" not in columns:
        raise FerkitError(f"{name}, line 1: header {','.join(columns)!r} has no 'pixels' column "
                          "(expected emotion,pixels,Usage)")
    i_pix = columns.index("pixels")
    i_emo = columns.index("emotion") if "emotion" in columns else None
    i_use = columns.index("Usage") if "Usage" in columns else None
    rows = _Rows(name, skip_bad_rows)

    for position, line in enumerate(lines[1:]):
        lineno = position + 2
        line = line.rstrip(b"\r")
        if not line.strip():
            continue  # blank lines (a trailing newline, say) carry no row
        parts = line.split(b",")
        if len(parts) != len(columns):
            rows.bad(lineno, f"expected {len(columns)} fields, found {len(parts)}")
            continue
        label = -1
        if i_emo is not None:
            text = parts[i_emo].strip().strip(b'"')
            if not text.isdigit() or int(text) >= len(EMOTIONS):
                rows.bad(lineno, f"emotion {text.decode('utf-8', 'replace')!r} is not a label 0..6")
                continue
            label = int(text)
        usage = 0
        if i_use is not None:
            text = parts[i_use].strip().strip(b'"').decode("utf-8", "replace")
            if text not in USAGES:
                rows.bad(lineno, f"Usage {text!r} is not one of {', '.join(USAGES)}")
                continue
            usage = USAGES.index(text)
        pixels = parts[i_pix].strip().strip(b'"')
        count = len(pixels.split()) if b"  " in pixels or b"\t" in pixels else pixels.count(b" ") + 1
        if count != PIXELS:
            rows.bad(lineno, f"has {count} pixel values, expected {PIXELS} (48x48)")
            continue
        rows.labels.append(label)
        rows.usage.append(usage)
        rows.pixels.append(pixels)
        rows.rows.append(position)
        rows.lines.append(lineno)

    images = _parse_pixels(rows)
    return {
        "images": images,
        "labels": np.asarray(rows.labels, np.int8).reshape(-1),
        "usage": np.asarray(rows.usage, np.uint8).reshape(-1),
        "rows": np.asarray(rows.rows, np.int32).reshape(-1),
        "bad_rows": np.asarray(len(rows.bad_lines)),
        "bad_lines": np.asarray(rows.bad_lines, np.int64),
    }


def _fromstring(text: bytes) -> np.ndarray:
    """Whitespace-separated integers at C speed; an empty array if any token is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.int32, sep=" ")
        except ValueError:  # numpy ≥ 2.3 raises on unparsable data instead of stopping early
            return np.zeros(0, np.int32)


def _parse_pixels(rows: _Rows) -> np.ndarray:
    """One C-speed parse of every pixel field; only if that fails, row by row to name the bad lines."""
    if not rows.pixels:
        return np.zeros((0, SIDE, SIDE), np.uint8)
    values = _fromstring(b" ".join(rows.pixels))
    if values.size == len(rows.pixels) * PIXELS and values.min() >= 0 and values.max() <= 255:
        return values.astype(np.uint8).reshape(-1, SIDE, SIDE)

    keep, images = [], []
    for i, (pixels, lineno) in enumerate(zip(rows.pixels, rows.lines)):
        row = _fromstring(pixels)
        if row.size != PIXELS:
            rows.bad(lineno, "pixels must be whole numbers separated by spaces")
        elif row.min() < 0 or row.max() > 255:
            rows.bad(lineno, f"pixel value {int(row.max() if row.max() > 255 else row.min())} is outside 0..255")
        else:
            keep.append(i)
            images.append(row.astype(np.uint8))
    for name in ("labels", "usage", "rows", "lines"):
        column = getattr(rows, name)
        setattr(rows, name, [column[i] for i in keep])
    rows.pixels = []
    rows.bad_lines.sort()
    return np.stack(images).reshape(-1, SIDE, SIDE) if images else np.zeros((0, SIDE, SIDE), np.uint8)
