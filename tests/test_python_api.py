"""The Python API as users call it: `from ferkit import Recognizer, to_dataframe`, with PIL images, paths, bytes
and arrays, batches, video as a generator of per-frame records, and records as a pandas DataFrame. Real photos and
a real clip from ferkit.testing.media; a real (untrained) checkpoint."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

import ferkit
from ferkit import FerkitError, Recognizer, to_dataframe
from ferkit.media.video import VideoReader
from ferkit.records import TABLE_COLUMNS
from ferkit.runtime.video_recognition import process_video
from ferkit.testing.media import astronaut, iou, make_checkpoint, multi_face_frame, no_face_images, video_frames, \
    write_video

PHOTOS = {"astronaut": astronaut, "four faces": lambda: multi_face_frame()[0]}


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    return Recognizer(make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt"), threads=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", video_frames())


def without_source(records):
    return [{k: v for k, v in r.items() if k != "source"} for r in records]


def decode_threads():
    return [t for t in threading.enumerate() if t.name == "ferkit-decode"]


# ------------------------------------------------------------------------------------------------ images


@pytest.mark.parametrize("name", PHOTOS)
def test_a_pil_image_gives_the_records_of_its_pixels_as_rgb(recognizer, name, tmp_path):
    bgr = PHOTOS[name]()
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    pil = Image.fromarray(rgb)
    from_pil = recognizer.predict(pil)
    assert len(from_pil) == (1 if name == "astronaut" else 4)
    assert from_pil[0]["source"] == "<PIL>"
    assert without_source(from_pil) == without_source(recognizer.predict(rgb, rgb=True))
    assert without_source(from_pil) == without_source(recognizer.predict(bgr))
    path = tmp_path / "photo.png"  # lossless, so the file's pixels are the array's
    cv2.imwrite(str(path), bgr)
    assert recognizer.predict(Image.open(path)) == recognizer.predict(path)  # source too: the file's name
    assert recognizer.predict(Image.open(path), source="mine")[0]["source"] == "mine"
    # the old bug: RGB pixels read as BGR change the gray crop, so the scores move
    misread = recognizer.predict(rgb)
    assert [r["probabilities"] for r in misread] != [r["probabilities"] for r in from_pil]


def test_every_pil_mode_is_converted_the_way_its_pixels_mean(recognizer, tmp_path):
    def predict(image, **kw):  # one source name, so that records compare by their faces
        return recognizer.predict(image, source="photo", **kw)

    pil = Image.fromarray(np.ascontiguousarray(astronaut()[:, :, ::-1]))
    gray = pil.convert("L")
    expected_gray = predict(np.asarray(gray))
    assert len(expected_gray) == 1
    assert predict(gray) == predict(gray.convert("LA")) == expected_gray
    assert predict(pil.convert("RGBA")) == predict(np.asarray(pil.convert("RGBA")), rgb=True)
    for mode in ("P", "CMYK", "YCbCr"):  # four channels of CMYK must not be read as BGRA
        converted = pil.convert(mode)
        faces = predict(converted)
        assert faces == predict(np.asarray(converted.convert("RGB")), rgb=True), mode
        assert len(faces) == 1 and iou(faces[0]["box"], predict(pil)[0]["box"]) > 0.8, mode
    deep = tmp_path / "deep.png"  # 16-bit gray: Pillow opens it as I;16 (or I), OpenCV as uint16; both kept deep
    cv2.imwrite(str(deep), cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    opened = Image.open(deep)
    assert opened.mode.startswith("I") and predict(opened) == predict(deep)
    deep_pixels = np.asarray(gray).astype(np.uint16) * 257
    big_endian = Image.fromarray(deep_pixels.astype(">u2"))  # OpenCV takes native byte order only
    assert big_endian.mode == "I;16B" and predict(big_endian) == predict(deep_pixels)


def test_a_pil_image_is_seen_upright_as_its_exif_says(recognizer, tmp_path):
    upright = Image.fromarray(np.ascontiguousarray(astronaut()[:, :, ::-1]))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # sideways pixels, as a phone stores them
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to show"
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=95, exif=exif)
    from_pil, from_path = recognizer.predict(Image.open(path)), recognizer.predict(path)
    assert len(from_pil) == len(from_path) == 1
    assert iou(from_pil[0]["box"], from_path[0]["box"]) > 0.9  # two JPEG decoders: nearly the same pixels
    assert from_pil == recognizer.predict(ImageOps.exif_transpose(Image.open(path)), source=str(path))


def test_paths_bytes_and_memoryviews_and_bad_images(recognizer, tmp_path):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut())
    expected = without_source(recognizer.predict(astronaut()))
    for image in (str(path), path, path.read_bytes(), memoryview(path.read_bytes()), bytearray(path.read_bytes())):
        assert without_source(recognizer.predict(image)) == expected, type(image)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(FerkitError, match="cannot read the PIL image"):
        recognizer.predict(Image.open(truncated))  # Image.open is lazy: the pixels fail inside predict
    with pytest.raises(FerkitError, match="not an image"):
        recognizer.predict([[1, 2], [3]])


def test_predict_batch_takes_every_kind_and_returns_one_list_per_image(recognizer, tmp_path):
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), multi_face_frame()[0])
    pil = Image.fromarray(np.ascontiguousarray(astronaut()[:, :, ::-1]))
    images = [str(path), pil, path.read_bytes(), no_face_images()[0], astronaut()]
    batch = recognizer.predict_batch(images)
    assert [len(faces) for faces in batch] == [4, 1, 4, 0, 1]
    assert [faces[0]["source"] for faces in batch if faces] == [str(path), "<PIL>", "<bytes>", "<array>"]
    for image, faces in zip(images, batch):
        one = recognizer.predict(image)
        assert [f["box"] for f in faces] == [f["box"] for f in one]
        assert all(abs(a - b) < 1e-5 for f, g in zip(faces, one)
                   for a, b in zip(f["probabilities"].values(), g["probabilities"].values()))
    rgb = recognizer.predict_batch([np.ascontiguousarray(astronaut()[:, :, ::-1])], sources=["a"], rgb=True)
    assert rgb[0][0]["source"] == "a" and rgb[0][0]["box"] == batch[1][0]["box"]
    assert recognizer.predict_batch([]) == []
    with pytest.raises(FerkitError, match="2 images but 1 sources"):
        recognizer.predict_batch([astronaut(), astronaut()], sources=["only one"])


# ------------------------------------------------------------------------------------------------ video


def test_predict_video_yields_what_process_video_records(recognizer, clip):
    frames = list(recognizer.predict_video(clip))
    assert len(frames) == 12 and [len(f) for f in frames] == [1] * 8 + [0, 0, 4, 4]
    expected = process_video(recognizer, clip, progress=False)["records"]
    assert [r for f in frames for r in f] == expected
    first = frames[0][0]
    assert {"frame", "time_s", "track", "face", "probabilities", "raw_emotion"} <= set(first)
    assert frames[3][0]["frame"] == 3 and frames[3][0]["time_s"] == pytest.approx(0.3)
    assert {f[0]["track"] for f in frames[:8]} == {1}  # one face moving: one track
    assert [r["face"] for r in frames[11]] == [1, 2, 3, 4]


def test_predict_video_every_and_max_frames(recognizer, clip):
    every = list(recognizer.predict_video(str(clip), every=3))
    assert len(every) == 4 and [f[0]["frame"] for f in every if f] == [0, 3, 6]  # frame 9 has no face
    assert every[0] == list(recognizer.predict_video(clip))[0]
    assert len(list(recognizer.predict_video(clip, max_frames=5))) == 5
    assert list(recognizer.predict_video(clip, max_frames=0)) == []
    for bad in ({"every": 0}, {"every": 1.5}, {"max_frames": -1}, {"smoothing": 0}, {"workers": 0}):
        with pytest.raises(FerkitError, match=next(iter(bad))):
            recognizer.predict_video(clip, **bad)  # refused at the call, before any frame


def frame_threads():
    return [t for t in threading.enumerate() if t.name.startswith("ferkit-frame")]


def test_frames_recognised_side_by_side_give_the_same_records_in_order(recognizer, clip):
    one_at_a_time = list(recognizer.predict_video(clip, workers=1))
    for workers in (2, 3):
        assert list(recognizer.predict_video(clip, workers=workers)) == one_at_a_time
        assert list(recognizer.predict_video(clip, workers=workers, every=3, max_frames=8)) == \
            list(recognizer.predict_video(clip, workers=1, every=3, max_frames=8))
    assert list(recognizer.predict_video(clip)) == one_at_a_time  # the default: one worker per core here
    twin = recognizer.for_frames(2)
    assert twin is recognizer.for_frames(2) and twin is not recognizer  # built once, with its own sessions
    assert recognizer.for_frames(1) is recognizer
    assert process_video(recognizer, clip, progress=False, workers=3)["records"] == \
        [r for f in one_at_a_time for r in f]
    assert not frame_threads()


def test_parts_not_known_to_be_thread_safe_keep_one_frame_at_a_time(recognizer, clip):
    haar = Recognizer(recognizer.classifier, detector="haar", threads=1)
    assert haar.for_frames(2) is haar
    frames = haar.predict_video(clip, workers=2)
    next(frames)
    assert not frame_threads()
    frames.close()


def test_closing_a_frame_parallel_video_early_stops_its_workers(recognizer, clip):
    frames = recognizer.predict_video(clip, workers=2)
    assert len(next(frames)) == 1 and frame_threads() and decode_threads()
    frames.close()
    assert not frame_threads() and not decode_threads()


def test_closing_predict_video_early_releases_the_reader(recognizer, clip, monkeypatch):
    closed = []
    original = VideoReader.close

    def spy(self):
        closed.append(self)
        original(self)

    monkeypatch.setattr(VideoReader, "close", spy)
    frames = recognizer.predict_video(clip)
    assert not closed  # nothing opened before the first frame is asked for
    assert len(next(frames)) == 1 and decode_threads()  # the reader decodes ahead on its thread
    frames.close()
    assert len(closed) == 1 and not closed[0].capture.isOpened() and not decode_threads()
    for faces in recognizer.predict_video(clip):
        break  # a loop that breaks: the generator is collected, and the reader released
    del faces
    assert len(closed) == 2 and not closed[1].capture.isOpened() and not decode_threads()


@pytest.fixture()
def served(tmp_path):
    """A folder served over HTTP on loopback: a real stream URL for predict_video."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_predict_video_reads_a_stream_url(recognizer, served):
    folder, url = served
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for frame in video_frames():  # MJPG in AVI plays from the start; an mp4's index is at its end
        writer.write(frame)
    writer.release()
    streamed = list(recognizer.predict_video(f"{url}/clip.avi"))
    from_file = list(recognizer.predict_video(folder / "clip.avi"))
    assert len(streamed) == 12 and streamed[0][0]["source"] == f"{url}/clip.avi"
    assert all(r["time_s"] is None for faces in streamed for r in faces)  # a stream has no timeline of its own

    def faces_only(frames):
        return [[{k: v for k, v in r.items() if k not in ("source", "time_s")} for r in f] for f in frames]

    assert faces_only(streamed) == faces_only(from_file)


def test_predict_video_reports_bad_sources_in_one_line(recognizer, tmp_path):
    with pytest.raises(FerkitError, match="no such file"):
        next(recognizer.predict_video(tmp_path / "missing.mp4"))
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(FerkitError, match="not a video"):
        next(recognizer.predict_video(tmp_path / "text.mp4"))
    with pytest.raises(FerkitError, match="camera 9 could not be opened"):
        next(recognizer.predict_video(9))
    with pytest.raises(FerkitError, match="the stream could not be opened"):
        next(recognizer.predict_video("http://127.0.0.1:9/nothing.mp4"))  # port 9: nothing listens


# ------------------------------------------------------------------------------------------------ tables


def test_to_dataframe_one_row_per_face_numbers_numeric(recognizer):
    batch = recognizer.predict_batch([astronaut(), multi_face_frame()[0], no_face_images()[0]],
                                     sources=["a", "b", "c"])
    table = to_dataframe(batch)
    assert list(table.columns) == [*TABLE_COLUMNS, *recognizer.labels]
    assert len(table) == 5 and list(table["source"]) == ["a"] + ["b"] * 4
    assert list(table["face"]) == [1, 1, 2, 3, 4] and table["x"].dtype.kind == "i"
    assert table["frame"].isna().all() and table["track"].isna().all() and table["time_s"].dtype.kind == "f"
    flat = [r for faces in batch for r in faces]
    assert table[list(recognizer.labels)].to_numpy().tolist() == [list(r["probabilities"].values()) for r in flat]
    assert table["w"].tolist() == [r["box"][2] for r in flat] and table["score"].dtype.kind == "f"
    assert to_dataframe(flat).equals(table) and to_dataframe(batch[0]).equals(table.iloc[:1])
    empty = to_dataframe([])
    assert list(empty.columns) == list(TABLE_COLUMNS) and len(empty) == 0
    with pytest.raises(FerkitError, match="not str"):
        to_dataframe(["not a record"])
    with pytest.raises(FerkitError, match="not a face record"):
        to_dataframe([{"emotion": "happy"}])


def test_to_dataframe_of_video_records(recognizer, clip):
    table = ferkit.to_dataframe(recognizer.predict_video(clip))  # straight from the generator
    assert len(table) == 16 and table["track"].dtype.kind == "i" and table["frame"].dtype.kind == "i"
    assert table["time_s"].tolist()[:3] == pytest.approx([0.0, 0.1, 0.2])
    assert table.groupby("track").size().to_dict() == {1: 8, 2: 2, 3: 2, 4: 2, 5: 2}


def test_to_dataframe_without_pandas_says_how_to_install_it(recognizer, monkeypatch):
    records = recognizer.predict(astronaut())
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(FerkitError, match=r'^to_dataframe needs pandas: pip install pandas$'):
        to_dataframe(records)


# ------------------------------------------------------------------------------------------------ the package


def test_import_ferkit_stays_light_and_exports_the_api():
    code = ("import sys, ferkit; heavy = {'cv2', 'onnxruntime', 'torch', 'pandas', 'numpy', 'PIL'};"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for name in ferkit.__all__:
        assert getattr(ferkit, name) is not None and name in dir(ferkit)
    assert ferkit.Recognizer is Recognizer and ferkit.to_dataframe is to_dataframe
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        ferkit.Nope  # noqa: B018
