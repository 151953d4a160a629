"""The REST API: results on real photos, no-face answers, JSON errors for bad input, the size and pixel limits,
uploads kept off the disk, video jobs, and 50 concurrent uploads against a real `ferkit serve` on 127.0.0.1.

The model is a small untrained checkpoint (any of the seven labels is right); the one test that needs the real
shipped default model skips until it is there."""

from __future__ import annotations

import concurrent.futures
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
def client(tiny_model):
    from fastapi.testclient import TestClient

    from ferkit.web.app import create_app

    app = create_app(model=str(tiny_model), workers=2, threads=1, max_upload_mb=LIMIT_MB, max_pixels=1_000_000,
                     max_video_frames=20)
    with TestClient(app) as test_client:
        yield test_client


def post_image(client, data: bytes, name: str = "photo.jpg", kind: str = "image/jpeg", **params):
    return client.post("/api/v1/predict", params=params, files={"file": (name, data, kind)})


def assert_record(face, source):
    assert set(face) >= {"source", "frame", "box", "emotion", "score", "probabilities"}
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
    assert models["models"][0] == {"name": str(tiny_model), "default": True, "loaded": True}
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


def test_video_job_gives_annotated_webm_timeline_and_tracks(client, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", video_frames(12))
    before = set(Path(tempfile.gettempdir()).glob("ferkit-web-*"))
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
    leftovers = set(Path(tempfile.gettempdir()).glob("ferkit-web-*")) - before
    assert not leftovers, "the video's temporary folder was not removed"


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
