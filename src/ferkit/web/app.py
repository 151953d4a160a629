"""The web app and REST API: `ferkit serve`, or `uvicorn` on `create_app(...)`.

    from ferkit.web.app import create_app
    app = create_app(model="default", detector="retinaface", max_upload_mb=20)

Routes:

- ``/``: the page (static/index.html): photo upload or drag-and-drop, live webcam, video upload.
- ``POST /api/v1/predict`` (multipart field ``file``): ``{"faces": [records], "width", "height", ...}``; records
  follow DESIGN.md (source, frame, box [x, y, w, h], emotion, score, probabilities). ``?annotate=true`` adds the
  annotated image as a JPEG data URL.
- ``POST /api/v1/predict/batch`` (several ``files``): ``{"results": [one result or one error per file]}``.
- ``POST /api/v1/video`` (``file``) → 202 and a job; ``GET /api/v1/video/{id}`` (progress and, when done, the
  per-face-track summary), ``…/{id}/video`` (annotated VP8 WebM), ``…/{id}/timeline.png``.
- ``GET /api/v1/models``, ``GET /healthz``; OpenAPI at ``/docs``.

Limits: a request body over ``max_upload_mb`` → 413 (refused from its Content-Length, or as soon as the stream
passes the limit); an image over ``max_pixels`` → 413 before its pixels are decoded; not an image → 415; an image
that cannot be decoded → 422. Every error is JSON: ``{"error": code, "detail": message}``.

Uploads stay in memory (the multipart parser never spools them to disk). A video is the one exception: OpenCV
reads files, so it goes to a private temporary folder that is removed as soon as the job ends (the upload itself
is unlinked as soon as its first frame has been read).

Concurrency: decoding and inference run in a pool of ``workers`` threads (ONNX Runtime releases the GIL), so the
event loop keeps answering; up to ``max_pending`` requests may wait for a worker, more get 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartException, MultiPartParser

import ferkit
from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS, ImageTooLarge, decode_image
from ferkit.vision.detect import DEFAULT_DETECTOR, list_detectors

STATIC_DIR = Path(__file__).resolve().parent / "static"
MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries on top of the file bytes themselves

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


class _TooLarge(Exception):
    pass


class _MemoryMultiPartParser(MultiPartParser):
    """Starlette's parser spools files over 1 MB to a temporary file; here they stay in memory (the body size is
    capped before parsing, so memory is bounded too)."""

    spool_max_size = 1 << 62


# ---------------------------------------------------------------------------------------------- engine


def model_choices(served) -> "OrderedDict[str, str]":
    """name → model for the page's model menu: the served model first, then every shipped model."""
    from ferkit.runtime.models import shipped_models

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
        from ferkit.runtime.videos import process_video

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


# ---------------------------------------------------------------------------------------------- uploads


async def read_uploads(request: Request, settings: Settings, max_files: int) -> list[tuple[str, str, bytes]]:
    """(field, filename, bytes) of every file part, in memory; 413 past the size limit, 415 for a body that is
    not multipart/form-data."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ApiError(415, "not_multipart", "send the file as multipart/form-data (field 'file')")
    limit = settings.max_upload_bytes + MULTIPART_OVERHEAD
    too_large = ApiError(413, "upload_too_large", f"upload is over the limit of {settings.max_upload_mb:g} MB")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large

    async def capped():
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _TooLarge
            yield chunk

    parser = _MemoryMultiPartParser(request.headers, capped(), max_files=max_files, max_fields=100)
    try:
        form = await parser.parse()
    except _TooLarge:
        raise too_large from None
    except MultiPartException as exc:
        raise ApiError(422, "bad_form", f"malformed upload: {exc.message}") from None
    uploads = []
    for field, value in form.multi_items():
        if hasattr(value, "read"):
            data = await value.read()
            await value.close()
            if len(data) > settings.max_upload_bytes:
                raise too_large
            uploads.append((field, value.filename or "upload", data))
    return uploads


def _multipart_doc(field: str, many: bool, what: str) -> dict:
    item = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": item} if many else item
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [field], "properties": {field: {**schema, "description": what}}}}}}}


# ---------------------------------------------------------------------------------------------- app


def create_app(model: str = "default", detector: str = DEFAULT_DETECTOR, max_upload_mb: float = 20.0,
               max_pixels: int = MAX_PIXELS, workers: int = 2, threads: int | None = None, max_pending: int = 128,
               max_batch: int = 32, max_video_frames: int = 1800, preload: bool = True) -> FastAPI:
    """The FastAPI app. preload: load the served model and detector now, so a bad model fails at start-up
    (a FerkitError) rather than on the first request."""
    settings = Settings(model=str(model), detector=detector, max_upload_mb=float(max_upload_mb),
                        max_pixels=int(max_pixels), workers=int(workers), threads=threads,
                        max_pending=int(max_pending), max_batch=int(max_batch),
                        max_video_frames=int(max_video_frames))
    if settings.max_upload_mb <= 0:
        raise FerkitError("--max-upload-mb must be positive")
    if settings.workers < 1:
        raise FerkitError("--workers must be at least 1")
    if detector not in list_detectors():
        raise FerkitError(f"unknown face detector {detector!r}; choose from {', '.join(list_detectors())}")
    engine = Engine(settings)
    if preload:
        engine.recognizer(settings.model, settings.detector)
    jobs: OrderedDict[str, VideoJob] = OrderedDict()

    app = FastAPI(title="ferkit", version=ferkit.__version__,
                  description="Facial expression recognition: faces, boxes and the probabilities of seven "
                              "expressions (angry, disgust, fear, happy, sad, surprise, neutral).")
    app.state.engine = engine
    app.state.settings = settings
    app.state.jobs = jobs

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _server_error(_request, exc: Exception):
        return JSONResponse({"error": "server_error", "detail": f"internal error ({type(exc).__name__})"},
                            status_code=500)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["service"])
    async def healthz():
        """Liveness: the served model and how busy the server is."""
        return {"status": "ok", "version": ferkit.__version__, "model": settings.model,
                "detector": settings.detector, "workers": settings.workers, "pending": engine.pending}

    @app.get("/api/v1/models", tags=["service"])
    async def models():
        """The models and face detectors a request may choose, the defaults, and the server's limits."""
        from ferkit.labels import EMOTIONS
        from ferkit.render.overlay import COLORS

        loaded = {m for m, _ in engine._recognizers}
        return {"models": [{"name": name, "default": name == settings.model, "loaded": name in loaded}
                           for name in engine.models],
                "detectors": engine.detectors, "default_model": settings.model,
                "default_detector": settings.detector, "labels": list(EMOTIONS),
                "colors": {k: "#{2:02x}{1:02x}{0:02x}".format(*bgr) for k, bgr in COLORS.items()},
                "limits": {"max_upload_mb": settings.max_upload_mb, "max_pixels": settings.max_pixels,
                           "max_batch": settings.max_batch, "max_video_frames": settings.max_video_frames}}

    model_query = Query(None, description="model name from /api/v1/models (default: the served model)")
    detector_query = Query(None, description="face detector: retinaface or haar (default: the served one)")
    annotate_query = Query(False, description="add the annotated image as a JPEG data URL ('annotated')")

    @app.post("/api/v1/predict", tags=["recognition"],
              openapi_extra=_multipart_doc("file", False, "the image (JPEG, PNG, WebP, BMP, TIFF, ...)"))
    async def predict(request: Request, model: str | None = model_query, detector: str | None = detector_query,
                      annotate: bool = annotate_query):
        """Every face in one image: `faces` (records: source, frame, box [x, y, w, h], emotion, score,
        probabilities), the image's `width` and `height`. No face gives an empty list."""
        model, detector = engine.check_choice(model, detector)
        uploads = await read_uploads(request, settings, max_files=1)
        if not uploads:
            raise ApiError(422, "no_file", "no file in the upload (send it in the multipart field 'file')")
        _field, name, data = uploads[0]
        return await engine.run(engine.predict, data, name, model, detector, annotate)

    @app.post("/api/v1/predict/batch", tags=["recognition"],
              openapi_extra=_multipart_doc("files", True, f"up to {settings.max_batch} images"))
    async def predict_batch(request: Request, model: str | None = model_query,
                            detector: str | None = detector_query, annotate: bool = annotate_query):
        """Several images in one request: `results`, one per file in order, each a /predict result or an
        error entry (`status`, `error`, `detail`) for a file that could not be read."""
        model, detector = engine.check_choice(model, detector)
        uploads = await read_uploads(request, settings, max_files=settings.max_batch)
        if not uploads:
            raise ApiError(422, "no_file", "no files in the upload (send them in the multipart field 'files')")
        results = await engine.run(engine.predict_batch, [(n, d) for _f, n, d in uploads], model, detector,
                                   annotate)
        return {"results": results, "count": len(results),
                "faces": sum(len(r.get("faces", [])) for r in results)}

    @app.post("/api/v1/video", tags=["video"], status_code=202,
              openapi_extra=_multipart_doc("file", False, "the video (mp4, webm, avi, mov, ...)"))
    async def video(request: Request, model: str | None = model_query, detector: str | None = detector_query):
        """Start recognising a video: returns the job; poll GET /api/v1/video/{id}."""
        model, detector = engine.check_choice(model, detector)
        active = sum(1 for j in jobs.values() if j.status in ("queued", "running"))
        if active >= settings.max_video_jobs:
            raise ApiError(503, "busy", "videos are already being processed; try again when they finish",
                           {"Retry-After": "5"})
        uploads = await read_uploads(request, settings, max_files=1)
        if not uploads:
            raise ApiError(422, "no_file", "no file in the upload (send it in the multipart field 'file')")
        _field, name, data = uploads[0]
        if not data:
            raise ApiError(422, "empty_file", f"{name}: empty file")
        if looks_like_image(data):
            raise ApiError(415, "not_a_video", f"{name}: this is an image; upload it as a photo instead")
        job = VideoJob(id=uuid.uuid4().hex[:16], filename=Path(name).name or "video", model=model,
                       detector=detector, created=time.time())
        jobs[job.id] = job
        finished = [k for k, j in jobs.items() if j.finished is not None]
        for key in finished[: max(0, len(finished) - settings.kept_video_jobs)]:
            del jobs[key]
        asyncio.get_running_loop().run_in_executor(engine.video_executor, engine.process_video, job, data, model,
                                                   detector)
        return JSONResponse(job.public(), status_code=202)

    def _job(job_id: str) -> VideoJob:
        job = jobs.get(job_id)
        if job is None:
            raise ApiError(404, "no_such_job", f"no video job {job_id!r} (finished jobs are kept for a while only)")
        return job

    @app.get("/api/v1/video/{job_id}", tags=["video"])
    async def video_status(job_id: str):
        """A video job: status (queued, running, done, error), frames_done / frame_count, progress 0..1, and when
        done the per-face-track summary and the URLs of the annotated video and the timeline chart."""
        return _job(job_id).public()

    @app.get("/api/v1/video/{job_id}/video", tags=["video"])
    async def video_file(job_id: str):
        """The annotated video (VP8 WebM)."""
        job = _job(job_id)
        if job.video is None:
            raise ApiError(409, "not_ready", f"video job {job_id} is {job.status}")
        stem = Path(job.filename).stem or "video"
        return Response(job.video, media_type="video/webm",
                        headers={"Content-Disposition": f'attachment; filename="{_safe(stem)}.annotated.webm"'})

    @app.get("/api/v1/video/{job_id}/timeline.png", tags=["video"])
    async def video_timeline(job_id: str):
        """The emotion timeline chart (PNG): each face track's probabilities over time."""
        job = _job(job_id)
        if job.timeline is None:
            raise ApiError(409, "not_ready", f"video job {job_id} is {job.status}")
        return Response(job.timeline, media_type="image/png")

    return app


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "video"


def serve(host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **kwargs) -> None:
    """Build the app and run it under uvicorn until interrupted."""
    import uvicorn

    app = create_app(**kwargs)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else shown}:{port}/"
    print(f"ferkit {ferkit.__version__}: serving model {kwargs.get('model', 'default')!r} with the "
          f"{kwargs.get('detector', DEFAULT_DETECTOR)} detector at {url}  (API docs: {url}docs; Ctrl-C stops)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {host}, reachable from other machines; ferkit has no authentication",
              flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
