"""Video jobs: an uploaded video recognised frame by frame on a thread of its own, its annotated WebM and timeline
chart kept on disk (in the server's temporary folder, ferkit.web.scratch) while the job is remembered.

Memory: at most ``max_video_jobs`` uploads are received or waiting at once, each written to disk as soon as it has
arrived; results live on disk, so finished jobs hold only their summaries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.web.scratch import Scratch
from ferkit.web.workers import ApiError, Engine

log = logging.getLogger("uvicorn.error")


class _Stopped(Exception):
    """Raised from a frame callback when the server shuts down."""


@dataclass
class VideoJob:
    id: str
    filename: str
    model: str
    detector: str
    status: str = "queued"
    frames_done: int = 0
    frame_count: int | None = None
    error: str | None = None
    error_status: int | None = None
    result: dict | None = None
    created: float = 0.0
    finished: float | None = None
    folder: Path | None = field(default=None, repr=False)
    source: Path | None = field(default=None, repr=False)

    @property
    def video(self) -> Path | None:
        path = self.folder / "annotated.webm" if self.folder and self.status == "done" else None
        return path if path is not None and path.is_file() else None

    @property
    def timeline(self) -> Path | None:
        path = self.folder / "timeline.png" if self.folder and self.status == "done" else None
        return path if path is not None and path.is_file() else None

    def public(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("folder", "source")}
        out["progress"] = (min(1.0, self.frames_done / self.frame_count) if self.frame_count else
                           (1.0 if self.status == "done" else None))
        if self.status == "done":
            out["video_url"] = f"/api/v1/video/{self.id}/video"
            out["timeline_url"] = f"/api/v1/video/{self.id}/timeline.png"
        return out


class VideoJobs:
    """The jobs the server remembers (all running or waiting ones, and the last few finished ones)."""

    def __init__(self, engine: Engine, scratch: Scratch):
        self.engine = engine
        self.settings = engine.settings
        self.scratch = scratch
        self.jobs: OrderedDict[str, VideoJob] = OrderedDict()
        self.receiving = 0  # uploads being received: they count against the job limit before they are jobs
        self.stopping = False

    def active(self) -> int:
        return self.receiving + sum(1 for j in self.jobs.values() if j.status in ("queued", "running"))

    def get(self, job_id: str) -> VideoJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "no_such_job",
                           f"no video job {job_id[:40]!r} (finished jobs are kept for a while only)")
        return job

    async def start(self, receive, model: str, detector: str) -> VideoJob:
        """Check the job limit, then receive the upload (receive: a coroutine function returning (name, bytes)),
        write it to disk and queue the job."""
        if self.active() >= self.settings.max_video_jobs or self.stopping:
            raise ApiError(503, "busy", "videos are already being processed; try again when they finish",
                           {"Retry-After": "5"})
        self.receiving += 1
        try:
            name, data = await receive()
            job = VideoJob(id=uuid.uuid4().hex[:16], filename=Path(name).name[:200] or "video", model=model,
                           detector=detector, created=time.time())
            job.folder = self.scratch.job_folder(job.id)
            from ferkit.media.video import VIDEO_SUFFIXES

            suffix = Path(job.filename).suffix.lower()
            job.source = job.folder / f"upload{suffix if suffix in VIDEO_SUFFIXES else '.mp4'}"
            try:
                await asyncio.to_thread(job.source.write_bytes, data)  # from here on the upload is off the heap
            except OSError as exc:
                self.scratch.remove_job(job.id)
                log.error("video upload %r not stored: %s", job.filename, exc.strerror or exc)
                raise ApiError(507, "not_stored", "the server could not store the video "
                                                  f"({exc.strerror or type(exc).__name__}); try again later") from None
            del data
            self.jobs[job.id] = job
        finally:
            self.receiving -= 1
        self._forget_old()
        asyncio.get_running_loop().run_in_executor(self.engine.video_executor, self.process, job)
        return job

    def _forget_old(self) -> None:
        finished = [k for k, j in self.jobs.items() if j.finished is not None]
        for key in finished[: max(0, len(finished) - self.settings.kept_video_jobs)]:
            self.scratch.remove_job(key)
            del self.jobs[key]

    def process(self, job: VideoJob) -> None:
        """Recognise the job's video (on the video thread); every failure is a job error and one log line."""
        try:
            self._process(job)
            job.status = "done"
        except _Stopped:
            job.status, job.error_status, job.error = "error", 503, "the server is shutting down"
        except FerkitError as exc:
            job.status, job.error_status = "error", 422
            job.error = str(exc).replace(str(job.source), job.filename)
            log.warning("video job %s (%r): %s", job.id, job.filename, job.error)
        except Exception as exc:  # noqa: BLE001 - reported to the page and logged; the server stays up
            job.status, job.error_status, job.error = "error", 500, f"video processing failed ({type(exc).__name__})"
            log.error("video job %s (%r) failed: %s: %s", job.id, job.filename, type(exc).__name__,
                      str(exc)[:300], exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            job.finished = time.time()
            if job.source is not None:
                job.source.unlink(missing_ok=True)
            if job.status != "done" and job.folder is not None:
                self.scratch.remove_job(job.id)

    def _process(self, job: VideoJob) -> None:
        import cv2

        from ferkit.runtime.video_recognition import process_video

        if self.stopping:
            raise _Stopped
        job.status = "running"
        source, limit = job.source, self.settings.max_video_frames
        probe = cv2.VideoCapture(str(source))
        opened = probe.isOpened()
        count = int(probe.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if opened else 0
        pixels = int(probe.get(cv2.CAP_PROP_FRAME_WIDTH) * probe.get(cv2.CAP_PROP_FRAME_HEIGHT)) if opened else 0
        probe.release()
        job.frame_count = min(count, limit) if count > 0 else None

        def on_frame(index, _records):
            if self.stopping:
                raise _Stopped
            if index == 0:  # the reader holds the file open now: the upload leaves the disk at once
                source.unlink(missing_ok=True)
            job.frames_done = index + 1

        recognizer, lock = self.engine.recognizer(job.model, job.detector)
        out_video, timeline = job.folder / "annotated.webm", job.folder / "timeline.png"
        # the frames count against the decoded-pixel budget, so a video and photos never exceed it together
        with self.engine.pixels.hold(max(1, min(pixels, self.settings.max_pixels))):
            if lock:
                lock.acquire()
            try:  # one frame at a time: the server's pool of inference threads already shares the cores
                result = process_video(recognizer, source, out_video=out_video, max_frames=limit, progress=False,
                                       on_frame=on_frame, keep_records=False, workers=1)
            finally:
                if lock:
                    lock.release()
        self._chart(job, result, recognizer.labels, timeline)
        job.result = {"frames": result["frames"], "fps": round(result["fps"], 3),
                      "truncated": bool(result["truncated"]) and result["frames"] < limit,
                      "stopped_at_limit": count > limit, "faces_seen": result["faces_seen"],
                      "tracks": result["tracks"], "seconds": result["seconds"]}

    def _chart(self, job: VideoJob, result: dict, labels, path: Path) -> None:
        from ferkit.render.charts import timeline_chart

        with self.engine.chart_lock:  # matplotlib's pyplot is not thread-safe
            try:
                timeline_chart(result["timeline"], labels, path, fps=result["fps"],
                               title=f"{job.filename}: expressions per face over time")
            except Exception as exc:  # noqa: BLE001 - a file name the chart cannot draw must not cost the video
                log.warning("video job %s: timeline title %r not drawn (%s); drawn without it", job.id,
                            job.filename, type(exc).__name__)
                timeline_chart(result["timeline"], labels, path, fps=result["fps"],
                               title="expressions per face over time")

    async def close(self, wait_s: float = 5.0) -> None:
        """At shutdown: stop the running job (at its next frame), wait for it a little, remove the folder."""
        self.stopping = True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(j.status in ("queued", "running") for j in self.jobs.values()):
            await asyncio.sleep(0.05)
        self.engine.video_executor.shutdown(wait=False, cancel_futures=True)
        self.scratch.close()
