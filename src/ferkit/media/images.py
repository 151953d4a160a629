"""Image decoding with validation: every way a file can be bad becomes a FerkitError with a clear message."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import check_input_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".gif"}
MAX_PIXELS = 50_000_000  # larger images are refused before decoding (decompression bombs)
MAX_IMAGE_BYTES = 512 * 2**20  # above any image under MAX_PIXELS (50 MP × 4 channels × 16 bits is 400 MB raw)


class ImageTooLarge(FerkitError):
    """An image over the pixel limit, refused before its pixels are decoded."""


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file header without decoding pixels (Pillow reads headers lazily)."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as probe:
            return probe.size
    except Image.DecompressionBombError:
        raise  # over Pillow's own hard limit (2 × Image.MAX_IMAGE_PIXELS): the caller refuses it
    except Exception:  # noqa: BLE001 - any failure here just means "unknown"; decoding decides
        return None


def decode_image(data: bytes, name: str = "<image>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Bytes → BGR / gray uint8 array, EXIF orientation applied. Raises FerkitError on anything unusable."""
    if not data:
        raise FerkitError(f"{name}: empty file")
    from PIL import Image

    try:
        size = _header_size(data)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name}: image is over the limit of {max_pixels:,} pixels ({exc})") from None
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageTooLarge(f"{name}: image is {size[0]}x{size[1]} pixels, over the limit of {max_pixels:,}")
    buffer = np.frombuffer(data, np.uint8)
    if data.startswith(b"\xff\xd8\xff"):  # JPEG: 8-bit, no alpha, so one decode that applies EXIF orientation
        image = cv2.imdecode(buffer, cv2.IMREAD_ANYCOLOR)
        if image is None or image.size == 0:
            raise FerkitError(f"{name}: not an image, or a corrupt or truncated one")
        return image
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)  # keeps alpha and 16-bit; EXIF handled below
    if image is None or image.size == 0:
        raise FerkitError(f"{name}: not an image, or a corrupt or truncated one")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        # IMREAD_UNCHANGED ignores EXIF orientation; re-decode colour with it applied.
        oriented = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        if oriented is not None and oriented.shape[:2] != image.shape[:2]:
            image = oriented
        elif oriented is not None and image.shape[2] == 3:
            image = oriented
    elif image.ndim == 2:
        oriented = cv2.imdecode(buffer, cv2.IMREAD_ANYDEPTH)  # gray, depth kept, EXIF orientation applied
        if oriented is not None and oriented.ndim == 2:
            image = oriented
    return image


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    path = check_input_file(path, MAX_IMAGE_BYTES, "image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FerkitError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image(data, str(path), max_pixels)


# Leading bytes of the image formats OpenCV decodes: a file that has none of them and does not decode is
# "not an image" (415); one that has them but does not decode is a corrupt image (422).
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*",
                    b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51",
                    b"#?RADIANCE", b"\x76\x2f\x31\x01")


def looks_like_image(data: bytes) -> bool:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    if data[4:12] in (b"ftypavif", b"ftypheic", b"ftypmif1"):
        return True
    return any(data.startswith(sig) for sig in IMAGE_SIGNATURES)
