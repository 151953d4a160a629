"""The REST API: results on real photos, no-face answers, JSON errors for bad input, the size and pixel limits,
uploads kept off the disk, video jobs, and 50 concurrent uploads against a real `ferkit serve` on 127.0.0.1.

The model is a small untrained checkpoint (any of the seven labels is right); the one test that needs the real
shipped default model skips until it is there."""

from __future__ import annotations

import concurrent.futures
import json
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.labels import EMOTIONS
from ferkit.testing.browser import running_server
from ferkit.testing.media import (
    DEFAULT_MODEL,
    NO_DEFAULT,
    astronaut,
    iou,
    make_checkpoint,
    no_face_images,
    video_frames,
    write_video,
)

# starlette >= 1.x asks for httpx2 under its TestClient; httpx works the same here
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

ASTRONAUT_FACE_BOX = (178, 57, 95, 120)  # x, y, w, h: RetinaFace's box, checked by eye
LIMIT_MB = 3


def jpeg(image, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def png(image) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit gray PNG of width×height black pixels: a few kB on the wire, width×height when decoded."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    pixels = zlib.compress(row * height, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("web-model") / "tiny.pt")


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory) -> Path:
    """Where the test app's temporary video folder goes (the system's temporary directory in real use)."""
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def client(tiny_model, scratch_root):
    from fastapi.testclient import TestClient

    from ferkit.web.app import create_app

    app = create_app(model=str(tiny_model), workers=2, threads=1, max_upload_mb=LIMIT_MB, max_pixels=1_000_000,
                     max_video_frames=20, scratch_root=scratch_root)
    with TestClient(app) as test_client:
        yield test_client


def post_image(client, data: bytes, name: str = "photo.jpg", kind: str = "image/jpeg", **params):
    return client.post("/api/v1/predict", params=params, files={"file": (name, data, kind)})


def assert_record(face, source):
    assert set(face) >= {"source", "frame", "face", "box", "emotion", "score", "probabilities"}
    assert face["source"] == source and face["frame"] is None
    assert list(face["probabilities"]) == list(EMOTIONS)
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-4
    assert face["emotion"] == max(face["probabilities"], key=face["probabilities"].get)
    assert face["score"] == face["probabilities"][face["emotion"]]


# ---------------------------------------------------------------------------------------------- results


def test_photo_gives_one_face_with_box_label_and_probabilities(client):
    response = post_image(client, jpeg(astronaut()), "astronaut.jpg", annotate="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (512, 512)
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert_record(face, "astronaut.jpg")
    assert iou(face["box"], ASTRONAUT_FACE_BOX) > 0.6
    assert body["annotated"].startswith("data:image/jpeg;base64,")
    assert "annotated" not in post_image(client, jpeg(astronaut())).json()


def test_haar_detector_can_be_chosen(client):
    body = post_image(client, jpeg(astronaut()), detector="haar").json()
    assert body["detector"] == "haar" and len(body["faces"]) == 1
    assert iou(body["faces"][0]["box"], ASTRONAUT_FACE_BOX) > 0.4


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason=NO_DEFAULT)
def test_real_default_model_finds_the_astronaut_happy():
    from fastapi.testclient import TestClient

    from ferkit.web.app import create_app

    with TestClient(create_app(threads=1)) as real:
        faces = post_image(real, jpeg(astronaut())).json()["faces"]
    assert [f["emotion"] for f in faces] == ["happy"]


def test_photos_without_a_face_give_an_empty_list(client):
    for image in no_face_images()[:2]:
        response = post_image(client, png(image), "scene.png", "image/png")
        assert response.status_code == 200
        assert response.json()["faces"] == []


def test_batch_gives_one_entry_per_file_in_order(client):
    files = [("files", ("astronaut.jpg", jpeg(astronaut()), "image/jpeg")),
             ("files", ("coffee.png", png(no_face_images()[0]), "image/png")),
             ("files", ("notes.txt", b"just some text", "text/plain"))]
    response = client.post("/api/v1/predict/batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and body["faces"] == 1
    first, second, third = body["results"]
    assert first["filename"] == "astronaut.jpg" and len(first["faces"]) == 1
    assert_record(first["faces"][0], "astronaut.jpg")
    assert second["faces"] == []
    assert third["status"] == 415 and third["error"] == "not_an_image" and "faces" not in third


def test_models_health_page_and_openapi(client, tiny_model):
    models = client.get("/api/v1/models").json()
    assert models["default_model"] == str(tiny_model)
    assert models["models"][0] == {"name": str(tiny_model), "default": True, "loaded": True,
                                   "labels": list(EMOTIONS)}  # each model's own labels, in its output order
    assert {"retinaface", "haar"} <= set(models["detectors"]) and models["labels"] == list(EMOTIONS)
    assert models["limits"]["max_upload_mb"] == LIMIT_MB
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "photo-input" in page.text
    assert "getUserMedia" in client.get("/static/app.js").text
    spec = client.get("/openapi.json").json()
    paths = {"/api/v1/predict", "/api/v1/predict/batch", "/api/v1/models", "/healthz", "/api/v1/video"}
    assert paths <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------------------------------------- errors


def _bad_requests():
    good = jpeg(astronaut())
    return {
        "text file": (dict(files={"file": ("notes.jpg", b"hello, not a photo", "image/jpeg")}), 415, "not_an_image"),
        "pdf": (dict(files={"file": ("doc.pdf", b"%PDF-1.4\n" + bytes(300), "application/pdf")}), 415, "not_an_image"),
        "truncated jpeg": (dict(files={"file": ("cut.jpg", good[:len(good) // 4], "image/jpeg")}), 422,
                           "corrupt_image"),
        "empty file": (dict(files={"file": ("empty.jpg", b"", "image/jpeg")}), 422, "empty_file"),
        "form without a file": (dict(content=b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
                                             b'hi\r\n--b--\r\n',
                                     headers={"content-type": "multipart/form-data; boundary=b"}), 422, "no_file"),
        "malformed multipart": (dict(content=b"--b\r\nnonsense", headers={"content-type": "multipart/form-data"}),
                                422, "bad_form"),
        "json body": (dict(json={"image": "abc"}), 415, "not_multipart"),
        "urlencoded form": (dict(data={"file": "abc"}), 415, "not_multipart"),
        "unknown model": (dict(files={"file": ("a.jpg", good, "image/jpeg")}, params={"model": "nope"}), 422,
                          "unknown_model"),
        "unknown detector": (dict(files={"file": ("a.jpg", good, "image/jpeg")}, params={"detector": "dlib"}), 422,
                             "unknown_detector"),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_input_gives_a_4xx_json_error(client, case):
    kwargs, status, code = _bad_requests()[case]
    response = client.post("/api/v1/predict", **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]
    assert client.get("/healthz").status_code == 200


def test_upload_over_the_size_limit_is_413(client):
    big = np.random.default_rng(0).integers(0, 255, LIMIT_MB * 1024 * 1024 + 1000, dtype=np.uint8).tobytes()
    response = post_image(client, b"\xff\xd8\xff" + big, "big.jpg")
    assert response.status_code == 413
    assert response.json()["error"] == "upload_too_large" and f"{LIMIT_MB} MB" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced on the stream itself
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n\r\n"
        for start in range(0, len(big), 256 * 1024):
            yield big[start:start + 256 * 1024]
        yield b"\r\n--xyz--\r\n"

    response = client.post("/api/v1/predict", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert response.status_code == 413 and response.json()["error"] == "upload_too_large"


@pytest.mark.parametrize("size", [(1200, 1000), (20000, 20000)])
def test_images_over_the_pixel_limit_are_refused_before_decoding(client, size):
    data = png_bomb(*size)
    assert len(data) < 1_000_000
    response = post_image(client, data, "bomb.png", "image/png")
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "image_too_large"


def test_uploads_stay_in_memory(client, monkeypatch):
    """Starlette would spool a file over 1 MB to a temporary file; the app keeps it in memory."""
    noise = np.random.default_rng(1).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    data = png(noise)
    assert 1_500_000 < len(data) < LIMIT_MB * 1024 * 1024

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was written to disk")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "mkstemp", no_disk)
    response = post_image(client, data, "noise.png", "image/png")
    assert response.status_code == 200 and response.json()["faces"] == []


# ---------------------------------------------------------------------------------------------- video


def _wait_for_job(client, job_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/video/{job_id}").json()
        if job["status"] in ("done", "error"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"video job {job_id} did not finish in {timeout} s")


def test_video_job_gives_annotated_webm_timeline_and_tracks(client, tmp_path, scratch_root):
    clip = write_video(tmp_path / "clip.mp4", video_frames(12))
    response = client.post("/api/v1/video", files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert response.status_code == 202, response.text
    job = _wait_for_job(client, response.json()["id"])
    assert job["status"] == "done", job
    assert job["frames_done"] == 12 and job["progress"] == 1.0
    assert job["result"]["frames"] == 12 and job["result"]["tracks"]
    assert job["result"]["tracks"][0]["emotion"] in EMOTIONS
    video = client.get(job["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/webm"
    assert video.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
    timeline = client.get(job["timeline_url"])
    assert timeline.status_code == 200 and timeline.content.startswith(b"\x89PNG")
    # the results stay on disk (not in memory) in the server's own folder, which names its owner; the upload is gone
    folder = client.app.state.scratch.path
    assert folder.parent == scratch_root and folder.name.startswith("ferkit-web-")
    assert int((folder / "owner").read_text().split()[0]) == os.getpid()
    assert sorted(p.name for p in (folder / job["id"]).iterdir()) == ["annotated.webm", "timeline.png"]


def test_video_limit_corrupt_file_and_image_given_as_video(client, tmp_path):
    clip = write_video(tmp_path / "long.mp4", video_frames(12) * 3)
    started = client.post("/api/v1/video", files={"file": ("long.mp4", clip.read_bytes())})
    job = _wait_for_job(client, started.json()["id"])
    assert job["status"] == "done" and job["result"]["frames"] == 20 and job["result"]["stopped_at_limit"]

    started = client.post("/api/v1/video", files={"file": ("x.mp4", b"\x00garbage" * 500)})
    job = _wait_for_job(client, started.json()["id"])
    assert job["status"] == "error" and job["error_status"] == 422 and "x.mp4" in job["error"]
    assert "ferkit-web-" not in job["error"]

    response = client.post("/api/v1/video", files={"file": ("a.jpg", jpeg(astronaut()), "image/jpeg")})
    assert response.status_code == 415 and response.json()["error"] == "not_a_video"
    assert client.get("/api/v1/video/nope").status_code == 404


# ---------------------------------------------------------------------------------------------- server


def test_serve_with_an_unknown_model_fails_with_one_line(capsys):
    assert main(["serve", "--model", "no-such-model", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit serve: error:") and "unknown model" in err and "Traceback" not in err


def test_fifty_concurrent_uploads_are_all_answered(tiny_model):
    """50 uploads at once against `ferkit serve` on 127.0.0.1 (2 inference threads): every one is answered,
    correctly, within a bounded time, and the server stays up."""
    import httpx

    good, bad = jpeg(astronaut()), b"not an image at all"
    with running_server(tiny_model, "--workers", 2, "--threads", 1) as url:
        def upload(i):
            data = bad if i % 10 == 9 else good
            with httpx.Client(timeout=60) as http:
                return i, http.post(url + "/api/v1/predict", files={"file": (f"{i}.jpg", data, "image/jpeg")})

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(upload, range(50)))
        elapsed = time.monotonic() - started
        for i, response in answers:
            if i % 10 == 9:
                assert response.status_code == 415 and response.json()["error"] == "not_an_image"
            else:
                assert response.status_code == 200, response.text
                assert len(response.json()["faces"]) == 1
        assert elapsed < 45, f"50 concurrent uploads took {elapsed:.1f} s"
        health = httpx.get(url + "/healthz", timeout=10).json()
        assert health["status"] == "ok" and health["pending"] == 0


# ---------------------------------------------------------------------------------------------- memory bounds


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux: write 5 to clear_refs); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mb("VmHWM") <= _status_mb("VmRSS") + 1
    except (OSError, KeyError):
        return False


def test_batch_of_large_images_is_decoded_one_at_a_time_in_bounded_memory(tiny_model, tmp_path, monkeypatch):
    """The issue's attack, smaller: 16 single-colour 3000×3000 PNGs (a few kB each, 27 MB each decoded). Decoded
    all at once they would take 430 MB; one at a time, the peak grows by a few images' worth at most."""
    import gc
    import threading
    import weakref

    from fastapi.testclient import TestClient

    from ferkit.web import workers
    from ferkit.web.app import create_app

    side, count = 3000, 16
    data = png(np.full((side, side, 3), (40, 120, 200), np.uint8))
    per_image_mb = side * side * 3 / 2**20
    live, most = [0], [0]
    lock = threading.Lock()
    real_decode = workers.decode_image

    def released():
        with lock:
            live[0] -= 1

    def counting_decode(*args, **kwargs):
        image = real_decode(*args, **kwargs)
        with lock:
            live[0] += 1
            most[0] = max(most[0], live[0])
        weakref.finalize(image, released)
        return image

    monkeypatch.setattr(workers, "decode_image", counting_decode)
    app = create_app(model=str(tiny_model), workers=2, threads=1, scratch_root=tmp_path)
    files = [("files", (f"{i}.png", data, "image/png")) for i in range(count)]
    with TestClient(app) as http:
        assert http.post("/api/v1/predict/batch", files=files[:1]).status_code == 200  # warm-up
        gc.collect()
        measured = _reset_peak_rss()
        before = _status_mb("VmRSS")
        response = http.post("/api/v1/predict/batch", files=files)
        growth = _status_mb("VmHWM") - before
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [f"{i}.png" for i in range(count)]
    assert all((r["width"], r["height"]) == (side, side) for r in results)
    assert most[0] == 1 and live[0] == 0, "images of a batch were alive at the same time"
    assert app.state.engine.pixels.peak <= side * side
    if measured:
        assert growth < 6 * per_image_mb, f"peak memory grew by {growth:.0f} MB for {count} images"


def test_annotated_images_of_a_batch_stay_within_a_budget(client, monkeypatch):
    """A few kB of PNG can become 20 MB of annotated JPEG: past the budget the rest of the batch comes without."""
    from ferkit.web.workers import Engine

    monkeypatch.setattr(Engine, "annotated_budget", property(lambda self: 150_000))
    noise = png(np.random.default_rng(2).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    files = [("files", (f"{i}.png", noise, "image/png")) for i in range(4)]
    results = client.post("/api/v1/predict/batch", files=files, params={"annotate": "true"}).json()["results"]
    assert [r["filename"] for r in results] == [f"{i}.png" for i in range(4)]
    assert results[0]["annotated"].startswith("data:image/jpeg;base64,")  # the first one always
    kept = [r for r in results if "annotated" in r]
    assert sum(len(r["annotated"]) for r in kept) <= 150_000 or len(kept) == 1
    assert all("send fewer files" in r["annotated_omitted"] for r in results if "annotated" not in r)
    assert len(kept) < 4


def test_decoded_pixel_budget_is_shared_by_the_inference_threads():
    import threading

    from ferkit.web.limits import PixelBudget

    budget = PixelBudget(100)
    inside, most = [0], [0]
    lock = threading.Lock()

    def work(pixels):
        with budget.hold(pixels):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work, args=(70,)) for _ in range(4)]  # two never fit together
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most[0] == 1 and budget.used == 0 and budget.peak == 70
    with budget.hold(10**9):  # an image larger than the budget still goes through, alone
        assert budget.used == 100


def _asgi_scope(path: str, length: int, method: str = "POST", headers=()) -> dict:
    raw = [(b"host", b"testserver"), (b"content-type", b"multipart/form-data; boundary=x"),
           (b"content-length", str(length).encode()), *headers]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": raw,
            "server": ("testserver", 80), "client": ("127.0.0.1", 50000)}


def _call(app, scope, receive):
    """(the messages the app sends, a coroutine function that runs the request)."""
    sent = []

    async def send(message):
        sent.append(message)

    async def run():
        await app(scope, receive, send)

    return sent, run


def test_uploads_over_the_memory_budget_get_503_before_their_body_is_read(tiny_model, tmp_path):
    """One upload of 1 MB is being received; a second one would take the bodies held over the 1.5 MB budget, so it
    is answered 503 with Retry-After without a byte of its body read. Once the first ends, uploads are taken again."""
    import asyncio

    from ferkit.web.app import create_app

    app = create_app(model=str(tiny_model), max_upload_mb=1, upload_memory_mb=1.5, preload=False,
                     scratch_root=tmp_path)
    reads = {"first": 0, "second": 0, "third": 0}

    async def scenario():
        gate = asyncio.Event()

        async def slow_receive():
            reads["first"] += 1
            await gate.wait()
            return {"type": "http.disconnect"}

        def counting_receive(key):
            async def receive():
                reads[key] += 1
                return {"type": "http.request", "body": b"", "more_body": False}
            return receive

        first_sent, first = _call(app, _asgi_scope("/api/v1/predict", 1_000_000), slow_receive)
        task = asyncio.create_task(first())
        while not reads["first"]:
            await asyncio.sleep(0.01)
        second_sent, second = _call(app, _asgi_scope("/api/v1/predict", 1_000_000), counting_receive("second"))
        await second()
        gate.set()
        await task
        third_sent, third = _call(app, _asgi_scope("/api/v1/predict", 1_000_000), counting_receive("third"))
        await third()
        return first_sent, second_sent, third_sent

    first_sent, second_sent, third_sent = asyncio.run(scenario())
    start = second_sent[0]
    assert start["status"] == 503 and (b"retry-after", b"2") in start["headers"]
    assert json.loads(second_sent[1]["body"])["error"] == "busy"
    assert reads["second"] == 0, "the refused upload's body was read"
    assert first_sent[0]["status"] == 400  # the first client went away: answered, and its budget returned
    assert third_sent[0]["status"] == 422 and reads["third"] >= 1  # taken, read, and found to hold no file


def test_video_over_the_job_limit_is_refused_before_its_body_is_read(client):
    import asyncio

    reads = [0]

    async def receive():
        reads[0] += 1
        return {"type": "http.request", "body": b"", "more_body": False}

    settings = client.app.state.settings
    settings.max_video_jobs, saved = 0, settings.max_video_jobs
    try:
        sent, run = _call(client.app, _asgi_scope("/api/v1/video", 500_000), receive)
        asyncio.run(run())
    finally:
        settings.max_video_jobs = saved
    assert sent[0]["status"] == 503 and (b"retry-after", b"5") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"] == "busy" and reads[0] == 0


def test_an_upload_that_stops_arriving_is_abandoned_with_408():
    import asyncio

    from starlette.requests import Request

    from ferkit.web.uploads import read_uploads
    from ferkit.web.workers import ApiError, Settings

    async def stalled():
        await asyncio.sleep(30)
        return {"type": "http.request", "body": b"", "more_body": False}

    request = Request(_asgi_scope("/api/v1/predict", 1000), stalled)
    with pytest.raises(ApiError) as caught:
        asyncio.run(read_uploads(request, Settings(upload_timeout_s=0.2), max_files=1))
    assert caught.value.status == 408 and caught.value.code == "upload_timeout"


# ---------------------------------------------------------------------------------------------- other pages, hosts


def test_a_post_from_another_origin_is_refused_and_the_own_origin_and_curl_work(client):
    photo = {"file": ("a.jpg", jpeg(astronaut()), "image/jpeg")}
    for origin in ("http://evil.example", "null", "http://testserver.evil.example", "https://testserver"):
        refused = client.post("/api/v1/predict", files=photo, headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert refused.json()["error"] == "forbidden_origin" and "--allow-origin" in refused.json()["detail"]
    assert client.get("/api/v1/models", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/api/v1/predict", files=photo, headers={"Origin": "http://testserver"}).status_code == 200
    assert client.post("/api/v1/predict", files=photo).status_code == 200  # no Origin: curl, scripts


def test_a_foreign_host_header_is_refused(client):
    for host in ("evil.example", "evil.example:80", "testserver:8080", "test server", "a@testserver"):
        response = client.get("/healthz", headers={"Host": host})
        assert response.status_code == 400, host
        assert response.json()["error"] == "bad_host"
    assert client.get("/healthz", headers={"Host": "testserver"}).status_code == 200


def _guard(**settings):
    from ferkit.web.guard import Guard
    from ferkit.web.limits import UploadBudget
    from ferkit.web.workers import Settings

    return Guard(None, Settings(**settings), UploadBudget(1 << 20))


@pytest.mark.parametrize("bound, host, ok", [
    ("127.0.0.1", "127.0.0.1:8000", True), ("127.0.0.1", "localhost:8000", True), ("127.0.0.1", "[::1]:8000", True),
    ("127.0.0.1", "LOCALHOST:8000", True), ("127.0.0.1", "localhost:9000", False), ("127.0.0.1", "localhost", False),
    ("127.0.0.1", "evil.example:8000", False), ("127.0.0.1", "192.168.1.5:8000", False),
    ("localhost", "127.0.0.1:8000", True), ("192.168.1.5", "192.168.1.5:8000", True),
    ("192.168.1.5", "127.0.0.1:8000", False), ("192.168.1.5", "evil.example:8000", False),
    ("0.0.0.0", "192.168.1.5:8000", True), ("0.0.0.0", "[fe80::1]:8000", True), ("0.0.0.0", "localhost:8000", True),
    ("0.0.0.0", "evil.example:8000", False), ("::", "evil.example", False),
])
def test_host_check_by_bound_address(bound, host, ok):
    scope = {"scheme": "http", "server": ("127.0.0.1" if bound == "0.0.0.0" else bound, 8000)}
    assert (_guard(host=bound).check_host(scope, host) is None) == ok


def test_allowed_host_and_allow_origin_flags():
    scope = {"scheme": "http", "server": ("127.0.0.1", 8000)}
    guard = _guard(host="0.0.0.0", allowed_hosts=("ferkit.example.org",), allow_origins=("http://localhost:3000",))
    assert guard.check_host(scope, "ferkit.example.org") is None
    assert guard.check_host(scope, "other.example.org")[0] == 400
    assert guard.check_origin(scope, {"host": "ferkit.example.org", "origin": "http://ferkit.example.org"}) is None
    assert guard.check_origin(scope, {"host": "127.0.0.1:8000", "origin": "http://localhost:3000"}) is None
    assert guard.check_origin(scope, {"host": "127.0.0.1:8000", "origin": "http://localhost:3001"})[0] == 403
    loopback = _guard(host="127.0.0.1")
    assert loopback.check_origin(scope, {"host": "127.0.0.1:8000", "origin": "http://localhost:8000"}) is None
    assert loopback.check_origin(scope, {"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}) is None
    assert _guard(allowed_hosts=("*",)).check_host(scope, "anything.example") is None


def test_serve_rejects_a_malformed_allow_origin(capsys):
    assert main(["serve", "--allow-origin", "evil.example", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--allow-origin" in err and "Traceback" not in err


def test_security_headers_on_every_response(client):
    responses = {"page": client.get("/"), "script": client.get("/static/app.js"), "api": client.get("/api/v1/models"),
                 "404": client.get("/nope"), "403": client.get("/healthz", headers={"Origin": "http://evil.example"}),
                 "400": client.get("/healthz", headers={"Host": "evil.example"}), "docs": client.get("/docs")}
    for what, response in responses.items():
        headers = response.headers
        assert headers["x-frame-options"] == "DENY", what
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["referrer-policy"] == "no-referrer", what
        assert "frame-ancestors 'none'" in headers["content-security-policy"], what
    page_csp = responses["page"].headers["content-security-policy"]
    assert "script-src 'self';" in page_csp and "unsafe-inline" not in page_csp
    assert "img-src 'self' data: blob:" in page_csp and "media-src 'self' data: blob:" in page_csp
    docs_csp = responses["docs"].headers["content-security-policy"]  # local files only (tests/test_web_docs.py)
    assert "https:" not in docs_csp and "script-src 'self' 'sha256-" in docs_csp
    assert "onsubmit=" not in responses["page"].text and "<script>" not in responses["page"].text


# ---------------------------------------------------------------------------------------------- hostile requests


def _multipart(parts, boundary="b") -> dict:
    """A hand-built multipart body: parts are (field, filename or None, bytes)."""
    body = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return dict(content=body + f"--{boundary}--\r\n".encode(),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"})


def _hostile_requests():
    """name → (method, path, request keyword arguments, expected status, expected error code or None for 2xx)."""
    good, tiny = jpeg(astronaut()), jpeg(np.full((32, 32, 3), 90, np.uint8))
    photo = {"files": {"file": ("a.jpg", good, "image/jpeg")}}
    long_name = "x" * 4000 + ".jpg"
    return {
        "GET on an upload route": ("GET", "/api/v1/predict", {}, 405, "method_not_allowed"),
        "PUT on the batch route": ("PUT", "/api/v1/predict/batch", photo, 405, "method_not_allowed"),
        "DELETE the page": ("DELETE", "/", {}, 405, "method_not_allowed"),
        "unknown path": ("GET", "/api/v2/predict", {}, 404, "not_found"),
        "path traversal into static": ("GET", "/static/../../../etc/passwd", {}, 404, "not_found"),
        "encoded traversal into static": ("GET", "/static/%2e%2e/%2e%2e/etc/passwd", {}, 404, "not_found"),
        "annotate=maybe": ("POST", "/api/v1/predict", {**photo, "params": {"annotate": "maybe"}}, 422,
                           "bad_parameter"),
        "model=../../etc/passwd": ("POST", "/api/v1/predict", {**photo, "params": {"model": "../../etc/passwd"}},
                                   422, "unknown_model"),
        "model with a NUL byte": ("POST", "/api/v1/predict", {**photo, "params": {"model": "default\x00"}}, 422,
                                  "unknown_model"),
        "detector=../x": ("POST", "/api/v1/predict", {**photo, "params": {"detector": "../x"}}, 422,
                          "unknown_detector"),
        "10 kB query value": ("POST", "/api/v1/predict", {**photo, "params": {"model": "m" * 10_000}}, 422,
                              "unknown_model"),
        "4000-character file name": ("POST", "/api/v1/predict", {"files": {"file": (long_name, tiny, "image/jpeg")}},
                                     200, None),
        "20000-character file name": ("POST", "/api/v1/predict", _multipart([("file", "y" * 20_000, tiny)]), 422,
                                      "bad_form"),
        "unicode file name": ("POST", "/api/v1/predict", {"files": {"file": ("фото 😀 $x$.jpg", tiny, "image/jpeg")}},
                              200, None),
        "file name with a path and NUL": ("POST", "/api/v1/predict", _multipart([("file", "../../a\x00.jpg", tiny)]),
                                          200, None),
        "text sent as image/png": ("POST", "/api/v1/predict", {"files": {"file": ("a.png", b"hi there", "image/png")}},
                                   415, "not_an_image"),
        "raw JPEG body, no multipart": ("POST", "/api/v1/predict",
                                        {"content": good, "headers": {"content-type": "image/jpeg"}}, 415,
                                        "not_multipart"),
        "no content type": ("POST", "/api/v1/predict", {"content": good}, 415, "not_multipart"),
        "multipart without a boundary": ("POST", "/api/v1/predict",
                                         {"content": good, "headers": {"content-type": "multipart/form-data"}},
                                         422, "bad_form"),
        "empty multipart body": ("POST", "/api/v1/predict",
                                 {"content": b"", "headers": {"content-type": "multipart/form-data; boundary=b"}},
                                 422, "no_file"),
        "empty body, no content type": ("POST", "/api/v1/predict/batch", {"content": b""}, 415, "not_multipart"),
        "file in the wrong field": ("POST", "/api/v1/predict", _multipart([("photo", "a.jpg", tiny)]), 200, None),
        "a field, not a file": ("POST", "/api/v1/predict", _multipart([("file", None, tiny)]), 422, "no_file"),
        "101 form fields": ("POST", "/api/v1/predict", _multipart([(f"f{i}", None, b"x") for i in range(101)]), 422,
                            "bad_form"),
        "33 tiny files in a batch": ("POST", "/api/v1/predict/batch",
                                     _multipart([("files", f"{i}.jpg", b"x") for i in range(33)]), 413,
                                     "too_many_files"),
        "batch without files": ("POST", "/api/v1/predict/batch", _multipart([("note", None, b"x")]), 422, "no_file"),
        "video that is an image": ("POST", "/api/v1/video", {"files": {"file": ("v.mp4", good, "video/mp4")}}, 415,
                                   "not_a_video"),
        "empty video": ("POST", "/api/v1/video", {"files": {"file": ("v.mp4", b"", "video/mp4")}}, 422,
                        "empty_file"),
        "video without a file": ("POST", "/api/v1/video", _multipart([("note", None, b"x")]), 422, "no_file"),
        "video status of an unknown job": ("GET", "/api/v1/video/" + "z" * 300, {}, 404, "no_such_job"),
        "video file of an unknown job": ("GET", "/api/v1/video/nope/video", {}, 404, "no_such_job"),
        "Origin null": ("POST", "/api/v1/predict", {**photo, "headers": {"Origin": "null"}}, 403, "forbidden_origin"),
        "8 kB header": ("GET", "/healthz", {"headers": {"X-Junk": "j" * 8192}}, 200, None),
    }


@pytest.mark.parametrize("case", list(_hostile_requests()))
def test_hostile_requests_get_a_clean_answer(client, case):
    method, path, kwargs, status, code = _hostile_requests()[case]
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text[:500]
    assert "Traceback" not in response.text and response.headers["content-type"] == "application/json"
    body = response.json()
    if code is not None:
        assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]
    assert client.get("/healthz").status_code == 200


def test_truncated_video_and_math_text_file_name(client, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", video_frames(12)).read_bytes()
    started = client.post("/api/v1/video", files={"file": ("cut.mp4", clip[: len(clip) // 3], "video/mp4")})
    assert started.status_code == 202
    job = _wait_for_job(client, started.json()["id"])
    assert job["status"] in ("done", "error")
    if job["status"] == "error":
        assert job["error_status"] == 422 and "cut.mp4" in job["error"]
    else:
        assert job["result"]["frames"] < 12
    name = r"$\frac{1}{0}$ $x^{{{$ \$.mp4"
    started = client.post("/api/v1/video", files={"file": (name, clip, "video/mp4")})
    job = _wait_for_job(client, started.json()["id"])
    assert job["status"] == "done", job
    assert client.get(job["timeline_url"]).content.startswith(b"\x89PNG")
    download = client.get(job["video_url"])
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]


def test_a_failing_video_job_logs_one_line_and_reports_json(client, tmp_path, monkeypatch, caplog):
    import ferkit.render.charts
    import ferkit.runtime.video_recognition

    clip = write_video(tmp_path / "clip.mp4", video_frames(6)).read_bytes()
    real_chart = ferkit.render.charts.timeline_chart

    def picky_chart(*args, title=None, **kwargs):  # a chart that cannot draw the name: the job still succeeds
        if "picky" in (title or ""):
            raise ValueError("cannot draw this title")
        return real_chart(*args, title=title, **kwargs)

    monkeypatch.setattr(ferkit.render.charts, "timeline_chart", picky_chart)
    with caplog.at_level("INFO", logger="uvicorn.error"):
        job = _wait_for_job(client, client.post("/api/v1/video", files={"file": ("picky.mp4", clip)}).json()["id"])
    assert job["status"] == "done"
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "picky.mp4" in caplog.records[0].getMessage()
    caplog.clear()

    def broken(*args, **kwargs):
        raise RuntimeError("the codec fell over")

    monkeypatch.setattr(ferkit.runtime.video_recognition, "process_video", broken)
    with caplog.at_level("INFO", logger="uvicorn.error"):
        job = _wait_for_job(client, client.post("/api/v1/video", files={"file": ("v.mp4", clip)}).json()["id"])
    assert job["status"] == "error" and job["error_status"] == 500
    assert job["error"] == "video processing failed (RuntimeError)"
    assert len(caplog.records) == 1 and caplog.records[0].levelname == "ERROR"
    assert "the codec fell over" in caplog.records[0].getMessage() and not caplog.records[0].exc_info
    response = client.get(f"/api/v1/video/{job['id']}/video")
    assert response.status_code == 409 and response.json()["error"] == "not_ready"
    assert not (client.app.state.scratch.path / job["id"]).exists()  # a failed job leaves nothing on disk


def test_a_video_that_cannot_be_stored_is_a_json_507(client, tmp_path, monkeypatch):
    clip = write_video(tmp_path / "clip.mp4", video_frames(6)).read_bytes()

    def disk_full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    response = client.post("/api/v1/video", files={"file": ("v.mp4", clip)})
    assert response.status_code == 507, response.text
    assert response.json()["error"] == "not_stored" and "No space left" in response.json()["detail"]
    monkeypatch.undo()
    assert client.app.state.videos.active() == 0  # the slot is free again
    folders = {p.name for p in client.app.state.scratch.folder().iterdir() if p.is_dir()}
    assert folders <= set(client.app.state.videos.jobs)  # nothing stored for the refused upload


def test_a_bug_in_a_route_answers_json_500_and_logs_one_line(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(client.app.state.engine, "predict", broken)
    with caplog.at_level("INFO", logger="uvicorn.error"):
        response = post_image(client, jpeg(astronaut()))
    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "detail": "internal error (KeyError)"}
    assert len(caplog.records) == 1 and "POST '/api/v1/predict' failed: KeyError" in caplog.records[0].getMessage()
    assert response.headers["x-content-type-options"] == "nosniff"


# ---------------------------------------------------------------------------------------------- nothing left behind


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_start_up_removes_the_folders_of_servers_that_are_gone(tmp_path, tiny_model):
    from fastapi.testclient import TestClient

    from ferkit.web.app import create_app
    from ferkit.web.scratch import LEGACY_AGE_S, process_start

    def folder(name, owner=None, age_s=0.0):
        path = tmp_path / f"ferkit-web-{name}"
        (path / "job").mkdir(parents=True)
        (path / "job" / "annotated.webm").write_bytes(b"x" * 100)
        if owner is not None:
            (path / "owner").write_text(owner)
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
        return path

    me = f"{os.getpid()} {process_start(os.getpid()) or ''}"
    dead = folder("dead", f"{_dead_pid()} 12345")
    reused = folder("reused", f"{os.getppid()} 1")  # a running PID, but another process's start time: reused
    live = folder("live", me)
    legacy_new = folder("legacy-new")  # an older server's folder without an owner file: could be in use
    legacy_old = folder("legacy-old", age_s=LEGACY_AGE_S + 60)
    unrelated = tmp_path / "other-folder"
    unrelated.mkdir()
    app = create_app(model=str(tiny_model), threads=1, preload=False, scratch_root=tmp_path)
    with TestClient(app):
        pass
    assert not dead.exists() and not legacy_old.exists()
    if Path("/proc/self/stat").exists():
        assert not reused.exists()
    assert live.exists() and legacy_new.exists() and unrelated.exists()


def test_sigterm_removes_the_video_folder_and_the_next_start_removes_a_killed_servers(tiny_model, tmp_path):
    """A server stopped with SIGTERM removes its temporary folder; one killed with SIGKILL cannot, and the next
    server to start removes it."""
    import signal

    import httpx

    temp = tmp_path / "tmp"
    temp.mkdir()
    clip = write_video(tmp_path / "clip.mp4", video_frames(6)).read_bytes()
    env = {"TMPDIR": str(temp)}

    def video_job(url):
        job = httpx.post(url + "/api/v1/video", files={"file": ("clip.mp4", clip)}, timeout=30).json()
        deadline = time.monotonic() + 60
        while job["status"] not in ("done", "error") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = httpx.get(f"{url}/api/v1/video/{job['id']}", timeout=10).json()
        assert job["status"] == "done", job
        folders = list(temp.glob("ferkit-web-*"))
        assert len(folders) == 1 and int((folders[0] / "owner").read_text().split()[0]) == url.pid
        return folders[0]

    with running_server(tiny_model, "--threads", 1, env=env) as url:
        video_job(url)
    assert not list(temp.glob("ferkit-web-*")), "SIGTERM left the video folder behind"

    with running_server(tiny_model, "--threads", 1, env=env) as url:
        killed = video_job(url)
        os.kill(url.pid, signal.SIGKILL)
    assert killed.exists()
    with running_server(tiny_model, "--threads", 1, env=env):
        assert not killed.exists(), "start-up did not remove a killed server's folder"
