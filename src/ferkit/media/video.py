"""Video in and out with OpenCV: files, camera indices and stream URLs; annotated mp4 output.

Every failure to open or read becomes a FerkitError with a clear message (no file, not a video, corrupt or
truncated, no camera)."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # no FFmpeg chatter on stderr; failures become FerkitError

import cv2  # noqa: E402
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import check_input_file

MAX_VIDEO_BYTES = 64 * 2**30  # hours of HD video; a larger "file" is a device or a mistake

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}


def is_video_path(path) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def parse_camera(value) -> int | str:
    """'0' → camera index 0; anything else (rtsp://…, http://…, a device path) is a stream source."""
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def _quiet_open(source) -> "cv2.VideoCapture":
    """Open a capture without OpenCV's own warnings on stderr: a failure is reported once, by us, clearly."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(previous)


class VideoReader:
    """Frames of a video file, camera or stream: `for index, frame in reader` (BGR uint8).

    After iterating, `frames_read` holds the count and `truncated` tells whether a file stopped well before
    the frame count in its header (a cut or damaged file whose start is readable).

    A file is decoded on a thread of its own, up to `prefetch` frames ahead, so that decoding overlaps whatever
    the caller does with each frame (OpenCV releases the GIL while it decodes); a camera or stream is read as its
    frames come, since frames waiting in a queue would only add latency."""

    def __init__(self, source, max_pixels: int = 50_000_000, prefetch: int = 4):
        self.source = source
        self.prefetch = prefetch
        self._stop, self._reader = threading.Event(), None
        self.is_camera = isinstance(source, int) or (isinstance(source, str) and "://" in source)
        if not self.is_camera:
            path = check_input_file(source, MAX_VIDEO_BYTES, "video")
            if path.stat().st_size == 0:
                raise FerkitError(f"{path}: empty file")
            source = str(path)
        self.name = f"camera {source}" if isinstance(source, int) else str(source)
        self.capture = _quiet_open(source)
        if not self.capture.isOpened():
            self.capture.release()
            if isinstance(self.source, int):
                raise FerkitError(f"camera {self.source} could not be opened (no camera there, or it is busy)")
            if self.is_camera:
                raise FerkitError(f"{self.name}: the stream could not be opened")
            raise FerkitError(f"{self.name}: not a video, or a corrupt or truncated one")
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0.5 <= self.fps <= 1000):
            self.fps = 25.0
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.width * self.height > max_pixels:
            self.capture.release()
            raise FerkitError(f"{self.name}: frames of {self.width}x{self.height} are over the limit of "
                              f"{max_pixels:,} pixels")
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not self.is_camera else None
        self.frames_read = 0
        self._first = None
        ok, frame = self.capture.read()
        if not ok or frame is None or frame.size == 0:
            self.capture.release()
            what = "no frame came from the camera" if self.is_camera else "no readable frame (corrupt or truncated)"
            raise FerkitError(f"{self.name}: {what}")
        self._first = frame

    @property
    def truncated(self) -> bool:
        return self.frame_count is not None and self.frames_read < 0.9 * self.frame_count - 1

    def __iter__(self):
        frames = self._decoded() if self.prefetch and not self.is_camera else self._read_as_they_come()
        for frame in frames:
            yield self.frames_read, frame
            self.frames_read += 1

    def _read(self):
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = self.capture.read()
        return frame if ok and frame is not None else None

    def _read_as_they_come(self):
        while (frame := self._read()) is not None:
            yield frame

    def _decoded(self):
        """Frames decoded by a background thread, in order, at most `prefetch` ahead of the consumer."""
        frames: queue.Queue = queue.Queue(maxsize=self.prefetch)

        def put(item) -> bool:
            while not self._stop.is_set():
                try:
                    frames.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def decode():
            while (frame := self._read()) is not None and put(frame):
                pass
            put(None)

        self._reader = threading.Thread(target=decode, name="ferkit-decode", daemon=True)
        self._reader.start()
        try:
            while (frame := frames.get()) is not None:
                yield frame
        finally:
            self._stop_reader()

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._stop.set()
            self._reader.join()
            self._reader = None

    def close(self):
        self._stop_reader()  # the decoding thread must be done with the capture before it is released
        self.capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


FOURCC_BY_SUFFIX = {".webm": "VP80"}  # VP8 WebM plays in browsers; everything else gets mp4v


class VideoWriter:
    """A video writer that refuses to start silently broken: mp4v, or VP8 for a .webm path."""

    def __init__(self, path, fps: float, size: tuple[int, int], fourcc: str | None = None):
        self.path = Path(path)
        fourcc = fourcc or FOURCC_BY_SUFFIX.get(self.path.suffix.lower(), "mp4v")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FerkitError(f"{self.path}: cannot create its folder ({exc.strerror})") from None
        self.size = (int(size[0]), int(size[1]))
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), float(fps), self.size)
        if not self.writer.isOpened():
            raise FerkitError(f"{self.path}: cannot write a {fourcc} video there")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def close(self):
        self.writer.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def has_display() -> bool:
    """Whether a live window can be shown: a display server and an OpenCV build with GUI support."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt"):
        return False
    try:
        cv2.namedWindow("ferkit-probe", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("ferkit-probe")
        return True
    except cv2.error:
        return False
