"""The web app and REST API: `ferkit serve`, or `uvicorn` on `create_app(...)`.

    from ferkit.web.app import create_app
    app = create_app(model="default", detector="retinaface", max_upload_mb=20)

Routes:

- ``/``: the page (static/index.html): photo upload or drag-and-drop, live webcam, video upload.
- ``POST /api/v1/predict`` (multipart field ``file``): ``{"faces": [records], "width", "height", ...}``; records
  follow ferkit.records (source, frame, box [x, y, w, h], emotion, score, probabilities). ``?annotate=true`` adds the
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
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS, looks_like_image
from ferkit.version import __version__
from ferkit.vision.detect import DEFAULT_DETECTOR, list_detectors
from ferkit.web.uploads import multipart_doc, read_uploads
from ferkit.web.workers import ApiError, Engine, Settings, VideoJob

STATIC_DIR = Path(__file__).resolve().parent / "static"


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

    app = FastAPI(title="ferkit", version=__version__,
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
        return {"status": "ok", "version": __version__, "model": settings.model,
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
              openapi_extra=multipart_doc("file", False, "the image (JPEG, PNG, WebP, BMP, TIFF, ...)"))
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
              openapi_extra=multipart_doc("files", True, f"up to {settings.max_batch} images"))
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
              openapi_extra=multipart_doc("file", False, "the video (mp4, webm, avi, mov, ...)"))
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
    print(f"ferkit {__version__}: serving model {kwargs.get('model', 'default')!r} with the "
          f"{kwargs.get('detector', DEFAULT_DETECTOR)} detector at {url}  (API docs: {url}docs; Ctrl-C stops)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {host}, reachable from other machines; ferkit has no authentication",
              flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
