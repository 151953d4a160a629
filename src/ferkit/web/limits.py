"""The server's two memory budgets.

- ``UploadBudget``: bytes of request bodies held at once, reserved from the Content-Length (or the largest upload
  when there is none) before a byte of the body is read, and returned when the response has been sent. Beyond it
  the request gets 503 with Retry-After, so a burst of large uploads cannot pile up in memory.
- ``PixelBudget``: pixels of decoded images alive at once across all inference threads. An image's size comes
  from its header before it is decoded; a thread waits until its image fits. With the default (the pixel limit of
  one image), two of the largest images are never decoded at the same time.
"""

from __future__ import annotations

import contextlib
import threading
from io import BytesIO


class UploadBudget:
    """Bytes of upload bodies in flight. Used on the event loop only, so it needs no lock."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.used = 0

    def reserve(self, size: int) -> bool:
        size = min(max(0, int(size)), self.capacity)
        if size and self.used + size > self.capacity:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(0, self.used - min(max(0, int(size)), self.capacity))


class PixelBudget:
    """Pixels of decoded images alive at once, shared by the inference threads."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int):
        pixels = min(max(1, int(pixels)), self.capacity)
        with self._cond:
            # a holder never waits for more, so waiting here cannot deadlock
            self._cond.wait_for(lambda: self.used + pixels <= self.capacity)
            self.used += pixels
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._cond:
                self.used -= pixels
                self._cond.notify_all()


def header_pixels(data: bytes) -> int | None:
    """Width × height from an image's header, without decoding it; None when Pillow cannot tell."""
    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as probe:
            width, height = probe.size
    except Exception:  # noqa: BLE001 - unknown size: the caller charges the worst case
        return None
    return int(width) * int(height)
