"""The server's recognition work: settings, recognizers per (model, detector) loaded once and shared by a bounded
pool of inference threads. Errors are ApiError: an HTTP status with a JSON body.

Images are decoded one at a time per request (a batch too) and only within the decoded-pixel budget
(ferkit.web.limits.PixelBudget), so memory does not grow with the number or the size of the images sent.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS, ImageTooLarge, decode_image, looks_like_image
from ferkit.sessions import available_cores
from ferkit.vision.detect import DEFAULT_DETECTOR, list_detectors
from ferkit.web.limits import PixelBudget, header_pixels


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
    max_video_jobs: int = 2  # received, queued or running at once
    kept_video_jobs: int = 8  # finished jobs whose results stay (on disk)
    upload_memory_mb: float | None = None  # upload bodies held at once; None: 8 uploads of the largest size
    max_decoded_pixels: int | None = None  # decoded image pixels alive at once; None: max_pixels (one image)
    upload_timeout_s: float = 30.0  # longest wait for the next piece of an upload body → 408
    host: str | None = None  # the address served at (None: the one each connection arrived on)
    allow_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    precision: str = "auto"  # the classifier's and the detector's graphs: auto, fp32 or int8
    device: str = "auto"  # ONNX Runtime's provider: auto, cpu, cuda or openvino

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def upload_memory_bytes(self) -> int:
        wanted = int(self.upload_memory_mb * 1024 * 1024) if self.upload_memory_mb else 8 * self.max_upload_bytes
        return max(wanted, self.max_upload_bytes + 64 * 1024)  # the largest single upload always fits

    @property
    def decoded_pixels(self) -> int:
        return max(self.max_decoded_pixels or 0, self.max_pixels)


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
        cores = available_cores()
        self.threads = settings.threads or max(1, cores // max(1, settings.workers))
        self.executor = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="ferkit-infer")
        # videos take one thread of their own, so photos and webcam frames keep being answered meanwhile
        self.video_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferkit-video")
        self.models = model_choices(settings.model)
        self.detectors = list_detectors()
        self._recognizers: dict[tuple[str, str], tuple[object, threading.Lock | None]] = {}
        self._load_lock = threading.Lock()
        self.chart_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe
        self.pixels = PixelBudget(settings.decoded_pixels)
        self.pending = 0  # requests waiting for or using a worker (changed on the event loop only)
        self.served = 0

    def check_choice(self, model: str | None, detector: str | None) -> tuple[str, str]:
        model = model or self.settings.model
        detector = detector or self.settings.detector
        if model not in self.models:
            raise ApiError(422, "unknown_model",
                           f"unknown model {model[:100]!r}; choose from {', '.join(self.models)}")
        if detector not in self.detectors:
            raise ApiError(422, "unknown_detector",
                           f"unknown face detector {detector[:100]!r}; choose from {', '.join(self.detectors)}")
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
                    recognizer = Recognizer(self.models[model], detector=detector, threads=self.threads,
                                            precision=self.settings.precision, device=self.settings.device)
                    found = (recognizer, None if detector == "retinaface" else threading.Lock())
                    self._recognizers[key] = found
        return found

    def check_capacity(self) -> None:
        """503 when too many requests are already waiting for a worker."""
        if self.pending >= self.settings.max_pending:
            raise ApiError(503, "busy", "the server is busy; try again in a moment", {"Retry-After": "1"})

    async def run(self, fn, *args):
        """fn(*args) on an inference thread; 503 when too many requests are already waiting."""
        self.check_capacity()
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
        pixels = header_pixels(data)
        if pixels is None:  # a known format: charged as the largest allowed; others OpenCV reads are uncompressed
            pixels = self.settings.max_pixels if looks_like_image(data) else len(data)
        with self.pixels.hold(pixels):
            image = self.decode(data, name)
            faces = self._faces([image], [name], model, detector)[0]
            result = self._result(image, name, faces, model, detector, annotate, started)
            del image  # released before the budget is returned
        return result

    def predict_batch(self, uploads, model: str, detector: str, annotate: bool) -> list[dict]:
        """One result per upload, in order: each image is decoded, recognised and dropped before the next one;
        one that cannot be read gives an error entry."""
        results, spent = [], 0
        budget = self.annotated_budget
        for name, data in uploads:
            try:
                result = self.predict(data, name, model, detector, annotate and spent < budget)
            except ApiError as exc:
                results.append({"filename": name, "status": exc.status, "error": exc.code, "detail": exc.detail})
                continue
            # annotated JPEGs can be far larger than the PNGs sent (a few kB of PNG → 20 MB of JPEG): past the
            # budget the rest of the batch comes without them, so the response stays bounded too
            size = len(result.get("annotated", ""))
            if spent and spent + size > budget:
                result.pop("annotated", None)
                size = 0
            spent += size
            if annotate and "annotated" not in result:
                result["annotated_omitted"] = (f"the batch's annotated images reached {budget / 2**20:.0f} MB; "
                                               "send fewer files per request to get them all")
            results.append(result)
        return results

    @property
    def annotated_budget(self) -> int:
        """Bytes of annotated images (base64) in one batch response; the first image's always fits."""
        return 2 * self.settings.max_upload_bytes

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
