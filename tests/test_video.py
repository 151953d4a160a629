"""Video on real frames: reading, truncated and bad files, tracking with stable ids, smoothing, and the outputs of
`ferkit predict video.mp4`."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.media.video import VideoReader, VideoWriter, parse_camera
from ferkit.runtime.recognizer import Recognizer
from ferkit.runtime.tracking import IouTracker
from ferkit.runtime.video_recognition import process_video
from ferkit.testing.media import make_checkpoint, video_frames, write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    frames = video_frames()
    mp4 = write_video(folder / "clip.mp4", frames)
    data = mp4.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])  # index at the end: nothing readable is left
    avi = folder / "clip.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for frame in frames:
        writer.write(frame)
    writer.release()
    data = avi.read_bytes()
    (folder / "cut.avi").write_bytes(data[: len(data) // 2])  # the first frames still play
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    return Recognizer(make_checkpoint(tmp_path_factory.mktemp("m") / "tiny.pt"), threads=1)


def test_reader_gives_every_frame(clips):
    with VideoReader(clips / "clip.mp4") as reader:
        frames = [frame for _, frame in reader]
        assert reader.fps == pytest.approx(10.0) and (reader.width, reader.height) == (640, 480)
        assert len(frames) == 12 and reader.frame_count == 12 and not reader.truncated


@pytest.mark.parametrize("name, message", [("cut.mp4", "corrupt or truncated"), ("empty.mp4", "empty file"),
                                           ("text.mp4", "not a video"), ("missing.mp4", "no such file")])
def test_bad_videos_raise_a_clear_error(clips, name, message):
    with pytest.raises(FerkitError, match=message):
        VideoReader(clips / name)


def test_a_truncated_video_is_read_as_far_as_it_goes(clips):
    with VideoReader(clips / "cut.avi") as reader:
        count = sum(1 for _ in reader)
    assert 0 < count < 12 and reader.truncated


def test_camera_sources_and_missing_camera():
    assert parse_camera("0") == 0 and parse_camera("rtsp://127.0.0.1/x") == "rtsp://127.0.0.1/x"
    with pytest.raises(FerkitError, match="camera 9 could not be opened"):
        VideoReader(9)


def test_tracker_keeps_ids_and_smooths_flicker():
    tracker = IouTracker(alpha=0.4)
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    labels = []
    for frame in range(10):
        box = (100 + 3 * frame, 100, 80, 100)
        probs = happy if frame % 4 != 3 else sad  # a one-frame flicker every fourth frame
        other = (400, 300 - 2 * frame, 60, 70)
        out = tracker.update(frame, [box, other], [probs, sad])
        assert [tid for tid, _ in out] == [1, 2]
        labels.append(int(np.argmax(out[0][1])))
    assert labels == [3] * 10  # no flicker after smoothing
    tracker.update(20, [(100, 100, 80, 100)], [happy])  # after max_age frames unseen, a new track
    summary = [t.summary(["a", "d", "f", "happy", "sad", "s", "n"]) for t in tracker.tracks()]
    assert [s["track"] for s in summary] == [1, 2, 3] and summary[0]["frames"] == 10
    assert summary[0]["emotion"] == "happy" and summary[1]["emotion"] == "sad"


def test_process_video_tracks_the_real_faces(recognizer, clips, tmp_path):
    result = process_video(recognizer, clips / "clip.mp4", out_video=tmp_path / "a.mp4", progress=False)
    assert result["frames"] == 12 and not result["truncated"]
    astronaut = [r for r in result["records"] if r["frame"] < 8]
    assert len(astronaut) == 8 and {r["track"] for r in astronaut} == {1}  # one stable id while it moves
    assert not [r for r in result["records"] if r["frame"] in (8, 9)]  # the frames with no face
    assert len([r for r in result["records"] if r["frame"] == 11]) == 4
    assert len(result["tracks"]) == 5
    with VideoReader(tmp_path / "a.mp4") as reader:
        assert sum(1 for _ in reader) == 12


def test_cli_video_writes_annotated_video_csv_timeline_and_summary(recognizer, clips, tmp_path, capsys):
    model = recognizer.classifier.source
    out = tmp_path / "results"
    code = main(["predict", str(clips / "clip.mp4"), "--model", model, "--video-dir", str(out),
                 "--json", str(tmp_path / "all.json"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with VideoReader(out / "clip.annotated.mp4") as reader:
        annotated = [frame for _, frame in reader]
    assert len(annotated) == 12
    rows = list(csv.DictReader((out / "clip.frames.csv").open()))
    assert len(rows) == 8 + 2 * 4 and rows[0]["track"] == "1" and float(rows[1]["time_s"]) == pytest.approx(0.1)
    assert cv2.imread(str(out / "clip.timeline.png")) is not None
    summary = json.loads((out / "clip.tracks.json").read_text())
    assert summary["frames"] == 12 and summary["tracks"][0]["frames"] == 8
    assert len(json.loads((tmp_path / "all.json").read_text())) == 16
    assert "5 face track(s)" in captured.out


def test_cli_reports_bad_and_truncated_videos_and_goes_on(recognizer, clips, tmp_path, capsys):
    model = recognizer.classifier.source
    code = main(["predict", str(clips / "cut.mp4"), str(clips / "cut.avi"), str(clips / "clip.mp4"), "--model", model,
                 "--video-dir", str(tmp_path / "o"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "cut.mp4: not a video, or a corrupt or truncated one" in captured.err
    assert "cut.avi: stopped after" in captured.err
    assert (tmp_path / "o" / "clip.annotated.mp4").is_file()
    with VideoReader(tmp_path / "o" / "cut.annotated.mp4") as reader:  # the readable part of cut.avi
        assert 0 < sum(1 for _ in reader) < 12


def test_writer_refuses_an_unwritable_place(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FerkitError):
        VideoWriter(tmp_path / "file" / "out.mp4", 10, (64, 48))
