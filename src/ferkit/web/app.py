"""The web app and REST API: `ferkit serve`, or `uvicorn` on `create_app(...)`.

    from ferkit.web.app import create_app
    app = create_app(model="default", detector="retinaface", max_upload_mb=20)

Routes:

- ``/``: the page (static/index.html): photo upload or drag-and-drop, live webcam, video upload.
- ``POST /api/v1/predict`` (multipart field ``file``): ``{"faces": [records], "width", "height", ...}``; records
  follow ferkit.records (source, frame, box [x, y, w, h], emotion, score, probabilities). ``?annotate=true`` adds the
  annotated image as a JPEG data URL.
- ``POST /api/v1/predict/batch`` (several ``files``): ``{"results": [one result or one error per file]}``; with
  ``?annotate=true``, annotated images past twice the upload limit (in all) are left out (``annotated_omitted``).
- ``POST /api/v1/video`` (``file``) → 202 and a job; ``GET /api/v1/video/{id}`` (progress and, when done, the
  per-face-track summary), ``…/{id}/video`` (annotated VP8 WebM), ``…/{id}/timeline.png``.
- ``GET /api/v1/models``, ``GET /healthz``; the API docs at ``/docs`` (Swagger UI) and ``/redoc``, served from
  this machine's files (ferkit.web.docs: no CDN, so they work offline); the OpenAPI schema at ``/openapi.json``.

Limits: a request body over ``max_upload_mb`` → 413 (refused from its Content-Length, or as soon as the stream
passes the limit); an image over ``max_pixels`` → 413 before its pixels are decoded; not an image → 415; an image
that cannot be decoded → 422. Every error is JSON: ``{"error": code, "detail": message}``.

Uploads stay in memory (the multipart parser never spools them to disk). A video is the one exception: OpenCV
reads files, so it goes to the server's private temporary folder (ferkit.web.scratch: removed at shutdown, and at
the next start-up if the server was killed); the upload is unlinked as soon as its first frame has been read.

Memory: upload bodies held at once are bounded by ``upload_memory_mb`` (beyond it: 503 with Retry-After, before the
body is read), decoded images by ``max_decoded_pixels`` (images are decoded one at a time per request, a batch too),
videos by ``max_video_jobs`` (their bytes go to disk as soon as they have arrived). Security: Host and Origin checks
and security headers on every response (ferkit.web.guard).

Concurrency: decoding and inference run in a pool of ``workers`` threads (ONNX Runtime releases the GIL), so the
event loop keeps answering; up to ``max_pending`` requests may wait for a worker, more get 503 with Retry-After.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS, looks_like_image
from ferkit.version import __version__
from ferkit.vision.detect import DEFAULT_DETECTOR, list_detectors
from ferkit.web.docs import add_docs
from ferkit.web.guard import Guard, split_origin
from ferkit.web.limits import UploadBudget
from ferkit.web.scratch import Scratch, sweep_stale
from ferkit.web.uploads import multipart_doc, read_uploads
from ferkit.web.videos import VideoJobs
from ferkit.web.workers import ApiError, Engine, Settings

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(model: str = "default", detector: str = DEFAULT_DETECTOR, max_upload_mb: float = 20.0,
               max_pixels: int = MAX_PIXELS, workers: int = 2, threads: int | None = None, max_pending: int = 128,
               max_batch: int = 32, max_video_frames: int = 1800, preload: bool = True,
               upload_memory_mb: float | None = None, max_decoded_pixels: int | None = None,
               host: str | None = None, allow_origins=(), allowed_hosts=(), scratch_root=None,
               precision: str = "auto", device: str = "auto") -> FastAPI:
    """The FastAPI app. preload: load the served model and detector now, so a bad model fails at start-up
    (a FerkitError) rather than on the first request. host: the address it is served at (for the Host check;
    None: the one each connection arrived on). allow_origins: other pages' origins allowed to call it.
    scratch_root: where its temporary folder goes (default: the system's temporary directory)."""
    settings = Settings(model=str(model), detector=detector, max_upload_mb=float(max_upload_mb),
                        max_pixels=int(max_pixels), workers=int(workers), threads=threads,
                        max_pending=int(max_pending), max_batch=int(max_batch),
                        max_video_frames=int(max_video_frames), upload_memory_mb=upload_memory_mb,
                        max_decoded_pixels=max_decoded_pixels, host=host, allow_origins=tuple(allow_origins),
                        allowed_hosts=tuple(allowed_hosts), precision=precision, device=device)
    _check(settings, detector)
    engine = Engine(settings)
    if preload:
        engine.recognizer(settings.model, settings.detector)
    scratch = Scratch(scratch_root)
    videos = VideoJobs(engine, scratch)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        sweep_stale(scratch_root)  # folders of earlier servers that were killed
        try:
            yield
        finally:  # SIGINT and SIGTERM both end here (uvicorn shuts down gracefully on either)
            await videos.close()
            engine.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ferkit", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Facial expression recognition: each face's box, its number (left to right) and "
                              "the probability of each of the model's labels (FER2013's seven expressions, FER+'s "
                              "eight, or a model's own classes: GET /api/v1/models lists them).")
    app.state.engine = engine
    app.state.settings = settings
    app.state.videos = videos
    app.state.scratch = scratch
    app.add_middleware(Guard, settings=settings, budget=UploadBudget(settings.upload_memory_bytes))
    add_docs(app)  # /docs and /redoc from local files, not FastAPI's CDN pages

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_request, exc: HTTPException):
        return JSONResponse({"error": HTTP_CODES.get(exc.status_code, "http_error"), "detail": str(exc.detail)},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(_request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                    for e in exc.errors()]
        return JSONResponse({"error": "bad_parameter", "detail": "; ".join(problems)[:500]}, status_code=422)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["service"])
    async def healthz():
        """Liveness: the served model and how busy the server is."""
        return {"status": "ok", "version": __version__, "model": settings.model,
                "detector": settings.detector, "workers": settings.workers, "pending": engine.pending}

    known_labels: dict[str, list[str]] = {}

    def model_labels(name: str) -> list[str] | None:
        """A model's labels in its output order (the page's bars and footer follow them): its loaded recognizer's,
        else a shipped model's ONNX graph's; None when only loading the model would tell."""
        if name not in known_labels:
            found = [r.labels for (m, _d), (r, _lock) in list(engine._recognizers.items()) if m == name]
            from ferkit.classifier.shipped import shipped_models

            shipped = shipped_models().get(engine.models[name])
            graph = shipped.with_suffix(".onnx") if shipped else None
            if not found and graph and graph.is_file():
                from ferkit.classifier.onnx_classifier import OnnxClassifier

                with contextlib.suppress(Exception):  # a damaged graph: the page takes the answers' labels
                    found = [OnnxClassifier(graph, threads=1).labels]
            if not found:
                return None
            known_labels[name] = list(found[0])
        return known_labels[name]

    @app.get("/api/v1/models", tags=["service"])
    async def models():
        """The models and face detectors a request may choose, the defaults, and the server's limits."""
        from ferkit.labels import EMOTIONS
        from ferkit.render.overlay import COLORS

        loaded = {m for m, _ in engine._recognizers}
        return {"models": [{"name": name, "default": name == settings.model, "loaded": name in loaded,
                            "labels": model_labels(name)} for name in engine.models],
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
        engine.check_capacity()  # before the body is read
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
        engine.check_capacity()
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

        async def receive():  # called by videos.start once a job slot is free
            uploads = await read_uploads(request, settings, max_files=1)
            if not uploads:
                raise ApiError(422, "no_file", "no file in the upload (send it in the multipart field 'file')")
            _field, name, data = uploads[0]
            if not data:
                raise ApiError(422, "empty_file", f"{name}: empty file")
            if looks_like_image(data):
                raise ApiError(415, "not_a_video", f"{name}: this is an image; upload it as a photo instead")
            return name, data

        job = await videos.start(receive, model, detector)
        return JSONResponse(job.public(), status_code=202)

    @app.get("/api/v1/video/{job_id}", tags=["video"])
    async def video_status(job_id: str):
        """A video job: status (queued, running, done, error), frames_done / frame_count, progress 0..1, and when
        done the per-face-track summary and the URLs of the annotated video and the timeline chart."""
        return videos.get(job_id).public()

    @app.get("/api/v1/video/{job_id}/video", tags=["video"])
    async def video_file(job_id: str):
        """The annotated video (VP8 WebM)."""
        job = videos.get(job_id)
        path = job.video
        if path is None:
            raise ApiError(409, "not_ready", f"video job {job_id} is {job.status}")
        stem = Path(job.filename).stem or "video"
        return FileResponse(path, media_type="video/webm",
                            headers={"Content-Disposition": f'attachment; filename="{_safe(stem)}.annotated.webm"'})

    @app.get("/api/v1/video/{job_id}/timeline.png", tags=["video"])
    async def video_timeline(job_id: str):
        """The emotion timeline chart (PNG): each face track's probabilities over time."""
        job = videos.get(job_id)
        path = job.timeline
        if path is None:
            raise ApiError(409, "not_ready", f"video job {job_id} is {job.status}")
        return FileResponse(path, media_type="image/png")

    return app


def _check(settings: Settings, detector: str) -> None:
    if settings.max_upload_mb <= 0:
        raise FerkitError("--max-upload-mb must be positive")
    if settings.workers < 1:
        raise FerkitError("--workers must be at least 1")
    if settings.upload_memory_mb is not None and settings.upload_memory_mb < settings.max_upload_mb:
        raise FerkitError("--upload-memory-mb must be at least --max-upload-mb")
    if detector not in list_detectors():
        raise FerkitError(f"unknown face detector {detector!r}; choose from {', '.join(list_detectors())}")
    for origin in settings.allow_origins:
        if split_origin(origin) is None:
            raise FerkitError(f"--allow-origin {origin!r}: give an origin such as http://localhost:3000")
    for name in settings.allowed_hosts:
        if not name.strip() or any(c.isspace() or c in "/\\@?#" for c in name):
            raise FerkitError(f"--allowed-host {name!r}: give a host name such as ferkit.example.org")


def _safe(name: str) -> str:
    # ASCII only: a header value must be latin-1, and a unicode letter would fail the whole response
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name)[:80] or "video"


def serve(host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **kwargs) -> None:
    """Build the app and run it under uvicorn until interrupted."""
    import uvicorn

    app = create_app(host=host, **kwargs)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else shown}:{port}/"
    print(f"ferkit {__version__}: serving model {kwargs.get('model', 'default')!r} with the "
          f"{kwargs.get('detector', DEFAULT_DETECTOR)} detector at {url}  (API docs: {url}docs; Ctrl-C stops)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {host}, reachable from other machines; ferkit has no authentication",
              flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
