"""Shared fixtures: where the real FER2013 files are, a private cache folder, and small real csv files.

The real csv is 300 MB uncompressed. Only the session fixture `fer2013_full` parses all of it (once, then it is
cached under the session's FERKIT_CACHE); every other test works on a few real rows read from its start.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FER2013 = REPO.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"
SKIP_MESSAGE = "FER2013 not found: set FERKIT_FER2013 or put fer2013.csv.gz in ../shared/data/fer2013/"

# Face regions (top, bottom, left, right) of scikit-image's sample photos.
ASTRONAUT_FACE = (30, 190, 170, 330)
CAMERA_FACE = (80, 190, 160, 270)


def find_fer2013() -> Path | None:
    env = os.environ.get("FERKIT_FER2013")
    path = Path(env) if env else DEFAULT_FER2013
    return path if path.is_file() else None


@pytest.fixture(scope="session", autouse=True)
def ferkit_cache(tmp_path_factory):
    """Every test caches into a fresh folder, never into ~/.cache."""
    folder = tmp_path_factory.mktemp("ferkit-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("FERKIT_CACHE", str(folder))
    yield folder
    patch.undo()


@pytest.fixture(scope="session")
def fer2013_path() -> Path:
    path = find_fer2013()
    if path is None:
        pytest.skip(SKIP_MESSAGE)
    return path


@pytest.fixture(scope="session")
def ferplus_path(fer2013_path) -> Path:
    for name in ("fer2013new.csv.gz", "fer2013new.csv"):
        if (fer2013_path.parent / name).is_file():
            return fer2013_path.parent / name
    pytest.skip(f"fer2013new.csv(.gz) not found beside {fer2013_path}")


@pytest.fixture(scope="session")
def fer2013_full(fer2013_path, ferkit_cache):
    """The whole real FER2013 file, parsed once per session (later loads hit the cache)."""
    from ferkit.data.fer2013 import load_fer2013

    return load_fer2013(fer2013_path)


# ---------------------------------------------------------------------------------------------- real images


@functools.lru_cache(maxsize=None)
def sample_faces() -> tuple[np.ndarray, ...]:
    """Real face photos from scikit-image: the astronaut (BGR colour) and the cameraman (gray), uncropped."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), data.camera()


def face_region(image: np.ndarray, box=None, shift: int = 0) -> np.ndarray:
    top, bottom, left, right = box or (ASTRONAUT_FACE if image.ndim == 3 else CAMERA_FACE)
    return image[top + shift:bottom + shift, left + shift:right + shift]


@functools.lru_cache(maxsize=None)
def skimage_crops(count: int = 16) -> np.ndarray:
    """count distinct real 48×48 gray face crops made from the two sample photos (shifted, mirrored, gamma)."""
    astronaut, camera = sample_faces()
    gray_astronaut = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    crops = []
    for i in range(count):
        source, box = (gray_astronaut, ASTRONAUT_FACE) if i % 2 == 0 else (camera, CAMERA_FACE)
        face = face_region(source, box, shift=4 * (i // 4) - 6)
        crop = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)
        if (i // 2) % 2:
            crop = crop[:, ::-1]
        gamma = 0.8 + 0.05 * (i // 4)
        crop = np.clip(255.0 * (crop / 255.0) ** gamma, 0, 255).round().astype(np.uint8)
        crops.append(np.ascontiguousarray(crop))
    return np.stack(crops)


@functools.lru_cache(maxsize=None)
def _real_rows(count: int) -> tuple[tuple[tuple[int, np.ndarray], ...], str]:
    path = find_fer2013()
    if path is not None:
        rows = []
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
            header = handle.readline().decode().strip().split(",")
            i_emo, i_pix = header.index("emotion"), header.index("pixels")
            for line in handle:
                parts = line.decode().strip().split(",")
                pixels = np.array(parts[i_pix].split(), np.uint8).reshape(48, 48)
                rows.append((int(parts[i_emo]), pixels))
                if len(rows) == count:
                    break
        return tuple(rows), "fer2013"
    crops = skimage_crops(count)
    return tuple((i % 7, crops[i]) for i in range(count)), "skimage"


@pytest.fixture(scope="session")
def fer_rows():
    """16 real (emotion, 48×48 uint8 pixels) rows: the first rows of the real FER2013 file when it is present,
    else face crops of scikit-image's sample photos. All pixel images are distinct."""
    rows, _ = _real_rows(16)
    assert len({img.tobytes() for _, img in rows}) == len(rows)
    return list(rows)


@pytest.fixture(scope="session")
def face_crops():
    """8 real 48×48 uint8 face crops (scikit-image photos), whatever data is installed."""
    return skimage_crops(8)


# ---------------------------------------------------------------------------------------------- csv writer

DEFAULT_USAGE = ("Training",) * 10 + ("PublicTest",) * 3 + ("PrivateTest",) * 3


def pixel_text(pixels: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in np.asarray(pixels).reshape(-1))


def fer_line(emotion, pixels, usage: str, quote: bool = False) -> str:
    text = pixels if isinstance(pixels, str) else pixel_text(pixels)
    if quote:
        text = f'"{text}"'
    return f"{emotion},{text},{usage}"


def _write_fer_csv(path, rows, usages=None, *, newline: str = "\n", quote: bool = False,
                   trailing_blank: bool = False, header: str = "emotion,pixels,Usage", lines=None) -> Path:
    """Write a FER2013-format csv (gzip when the name ends in .gz). rows: (emotion, pixels) pairs; usages
    default to 10 Training, 3 PublicTest, 3 PrivateTest, cycling. lines: {data row position: raw line text}
    replaces those rows' text, for malformed-row tests."""
    path = Path(path)
    usages = usages or [DEFAULT_USAGE[i % len(DEFAULT_USAGE)] for i in range(len(rows))]
    text_rows = [fer_line(emotion, pixels, usage, quote) for (emotion, pixels), usage in zip(rows, usages)]
    for position, raw in (lines or {}).items():
        text_rows[position] = raw
    text = newline.join([header, *text_rows]) + newline
    if trailing_blank:
        text += newline
    data = text.encode()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def write_fer_csv():
    return _write_fer_csv
