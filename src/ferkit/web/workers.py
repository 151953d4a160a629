"""The server's recognition work: settings, recognizers per (model, detector) loaded once and shared by a bounded
pool of inference threads, and video jobs. Errors are ApiError: an HTTP status with a JSON body."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS, ImageTooLarge, decode_image, looks_like_image
from ferkit.vision.detect import DEFAULT_DETECTOR, list_detectors


@dataclass
class Settings:
    model: str = "default"
    detector: str = DEFAULT_DETECTOR
    max_upload_mb: float = 20.0
    max_pixels: int = MAX_PIXELS
    workers: int = 2
    threads: int | None = None  # ONNX Runtime threads per session; None: cores / workers
    max_pending: int = 128
    max_batch: int = 32
    max_video_frames: int = 1800
    max_video_jobs: int = 2  # queued or running at once
    kept_video_jobs: int = 8  # finished jobs whose results stay in memory

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class ApiError(Exception):
    """An HTTP error with a JSON body {"error": code, "detail": message}."""

    def __init__(self, status: int, code: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def model_choices(served) -> "OrderedDict[str, str]":
    """name → model for the page's model menu: the served model first, then every shipped model."""
    from ferkit.classifier.shipped import shipped_models

    choices: OrderedDict[str, str] = OrderedDict()
    choices[str(served)] = str(served)
    for name in shipped_models():
        choices.setdefault(name, name)
    return choices


class Engine:
    """Recognizers per (model, detector), loaded once and shared by a bounded pool of inference threads."""

    def __init__(self, settings: Settings):
        self.settings = settings
        cores = os.cpu_count() or 1
        self.threads = settings.threads or max(1, cores // max(1, settings.workers))
        self.executor = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="ferkit-infer")
        # videos take one thread of their own, so photos and webcam frames keep being answered meanwhile
        self.video_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferkit-video")
        self.models = model_choices(settings.model)
        self.detectors = list_detectors()
        self._recognizers: dict[tuple[str, str], tuple[object, threading.Lock | None]] = {}
        self._load_lock = threading.Lock()
        self._chart_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe
        self.pending = 0  # requests waiting for or using a worker (changed on the event loop only)
        self.served = 0

    def check_choice(self, model: str | None, detector: str | None) -> tuple[str, str]:
        model = model or self.settings.model
        detector = detector or self.settings.detector
        if model not in self.models:
            raise ApiError(422, "unknown_model", f"unknown model {model!r}; choose from {', '.join(self.models)}")
        if detector not in self.detectors:
            raise ApiError(422, "unknown_detector",
                           f"unknown face detector {detector!r}; choose from {', '.join(self.detectors)}")
        return model, detector

    def recognizer(self, model: str, detector: str):
        """(recognizer, lock or None). ONNX Runtime sessions are safe to share between threads; OpenCV's Haar
        cascade is not, so a Haar recognizer comes with a lock."""
        key = (model, detector)
        found = self._recognizers.get(key)
        if found is None:
            from ferkit.runtime.recognizer import Recognizer

            with self._load_lock:  # one load at a time: the first load of a checkpoint exports it to ONNX
                found = self._recognizers.get(key)
                if found is None:
                    recognizer = Recognizer(self.models[model], detector=detector, threads=self.threads)
                    found = (recognizer, None if detector == "retinaface" else threading.Lock())
                    self._recognizers[key] = found
        return found

    async def run(self, fn, *args):
        """fn(*args) on an inference thread; 503 when too many requests are already waiting."""
        if self.pending >= self.settings.max_pending:
            raise ApiError(503, "busy", "the server is busy; try again in a moment", {"Retry-After": "1"})
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            self.pending -= 1
            self.served += 1

    # ------------------------------------------------------------------------------------------ work

    def decode(self, data: bytes, name: str):
        if not data:
            raise ApiError(422, "empty_file", f"{name}: empty file")
        try:
            return decode_image(data, name, self.settings.max_pixels)
        except ImageTooLarge as exc:
            raise ApiError(413, "image_too_large", str(exc)) from None
        except FerkitError as exc:
            if looks_like_image(data):
                raise ApiError(422, "corrupt_image", str(exc)) from None
            raise ApiError(415, "not_an_image",
                           f"{name}: not an image (send a JPEG, PNG, WebP, BMP, TIFF or similar file)") from None

    def _faces(self, images, names, model, detector):
        recognizer, lock = self.recognizer(model, detector)
        if lock is None:
            return recognizer.predict_batch(images, sources=names)
        with lock:
            return recognizer.predict_batch(images, sources=names)

    def predict(self, data: bytes, name: str, model: str, detector: str, annotate: bool) -> dict:
        started = time.perf_counter()
        image = self.decode(data, name)
        faces = self._faces([image], [name], model, detector)[0]
        return self._result(image, name, faces, model, detector, annotate, started)

    def predict_batch(self, uploads, model: str, detector: str, annotate: bool) -> list[dict]:
        """One result per upload: decoded ones are recognised together, bad ones give an error entry."""
        started = time.perf_counter()
        images, names, slots, results = [], [], [], []
        for name, data in uploads:
            try:
                images.append(self.decode(data, name))
                names.append(name)
                slots.append(len(results))
                results.append(None)
            except ApiError as exc:
                results.append({"filename": name, "status": exc.status, "error": exc.code, "detail": exc.detail})
        all_faces = self._faces(images, names, model, detector) if images else []
        for slot, image, name, faces in zip(slots, images, names, all_faces):
            results[slot] = self._result(image, name, faces, model, detector, annotate, started)
        return results

    def _result(self, image, name, faces, model, detector, annotate, started) -> dict:
        result = {"filename": name, "faces": faces, "width": int(image.shape[1]), "height": int(image.shape[0]),
                  "model": model, "detector": detector, "seconds": round(time.perf_counter() - started, 4)}
        if annotate:
            import cv2

            from ferkit.render.overlay import draw_faces

            ok, jpeg = cv2.imencode(".jpg", draw_faces(image, faces), [cv2.IMWRITE_JPEG_QUALITY, 88])
            if ok:
                result["annotated"] = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()
        return result

    def process_video(self, job: "VideoJob", data: bytes, model: str, detector: str) -> None:
        from ferkit.media.video import VIDEO_SUFFIXES
        from ferkit.runtime.video_recognition import process_video

        job.status = "running"
        folder = Path(tempfile.mkdtemp(prefix="ferkit-web-"))
        suffix = Path(job.filename).suffix.lower()
        source = folder / f"upload{suffix if suffix in VIDEO_SUFFIXES else '.mp4'}"
        try:
            source.write_bytes(data)
            del data
            import cv2

            probe = cv2.VideoCapture(str(source))
            count = int(probe.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if probe.isOpened() else 0
            probe.release()
            limit = self.settings.max_video_frames
            job.frame_count = min(count, limit) if count > 0 else None

            def on_frame(index, _records):
                if index == 0:  # the reader holds the file open now: the upload leaves the disk at once
                    try:
                        source.unlink()
                    except OSError:
                        pass
                job.frames_done = index + 1

            recognizer, lock = self.recognizer(model, detector)
            out_video, timeline = folder / "annotated.webm", folder / "timeline.png"
            if lock:
                lock.acquire()
            try:
                result = process_video(recognizer, source, out_video=out_video, max_frames=limit, progress=False,
                                       on_frame=on_frame)
            finally:
                if lock:
                    lock.release()
            with self._chart_lock:
                from ferkit.render.charts import timeline_chart

                timeline_chart(result["records"], recognizer.labels, timeline, fps=result["fps"],
                               title=f"{job.filename}: expressions per face over time")
            job.video = out_video.read_bytes()
            job.timeline = timeline.read_bytes()
            job.result = {"frames": result["frames"], "fps": round(result["fps"], 3),
                          "truncated": bool(result["truncated"]) and result["frames"] < limit,
                          "stopped_at_limit": count > limit, "faces_seen": len(result["records"]),
                          "tracks": result["tracks"], "seconds": result["seconds"]}
            job.status = "done"
        except FerkitError as exc:
            job.status, job.error_status = "error", 422
            job.error = str(exc).replace(str(source), job.filename)
        except Exception as exc:  # noqa: BLE001 - reported to the page; the server stays up
            job.status, job.error_status, job.error = "error", 500, f"video processing failed ({type(exc).__name__})"
        finally:
            job.finished = time.time()
            shutil.rmtree(folder, ignore_errors=True)


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
    video: bytes | None = None
    timeline: bytes | None = None

    def public(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("video", "timeline")}
        out["progress"] = (min(1.0, self.frames_done / self.frame_count) if self.frame_count else
                           (1.0 if self.status == "done" else None))
        if self.status == "done":
            out["video_url"] = f"/api/v1/video/{self.id}/video"
            out["timeline_url"] = f"/api/v1/video/{self.id}/timeline.png"
        return out
