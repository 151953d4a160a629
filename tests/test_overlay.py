"""Faces you can tell apart in the drawn outputs: each box's label carries the face's number (its track in a video),
labels never overlap, `ferkit predict --annotate` names chart files by face number, and the video timeline keeps
its legend off the curves. Real images (ferkit.testing.media), real records from the shipped model where it is
there, real files."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.labels import EMOTIONS, FERPLUS_EMOTIONS
from ferkit.records import face_record
from ferkit.render.overlay import color_for, draw_faces, label_text, layout_labels
from ferkit.testing.media import DEFAULT_MODEL, make_checkpoint, multi_face_frame


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _record(box, face, emotion="happy", track=None):
    probabilities = np.full(len(EMOTIONS), 0.02)
    probabilities[EMOTIONS.index(emotion)] = 1 - 0.02 * (len(EMOTIONS) - 1)
    record = face_record("test", box, probabilities, EMOTIONS, face=face)
    return record if track is None else {**record, "track": track}


def _assert_apart(spots, width, height):
    for a, b in itertools.combinations(spots, 2):
        assert not _overlap(a, b), (a, b)
    for x, y, w, h in spots:
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height


def test_labels_of_two_near_faces_do_not_overlap():
    frame, _ = multi_face_frame()
    records = [_record([42, 51, 63, 83], 1), _record([72, 56, 63, 83], 2, "sad")]  # 30 px apart, same height
    spots = []
    drawn = draw_faces(frame, records, layout=spots)
    assert len(spots) == 2
    _assert_apart(spots, frame.shape[1], frame.shape[0])
    assert spots[0][1] + spots[0][3] <= 51  # the first label sits right above its box
    for x, y, w, h in spots:  # each label really is drawn there: its pixels changed
        assert np.abs(drawn[y:y + h, x:x + w].astype(int) - frame[y:y + h, x:x + w]).mean() > 20


def test_labels_of_a_row_of_faces_at_the_top_edge_do_not_overlap():
    """Faces touching the top edge (no room above) and each other: the labels go below or inside, or slide."""
    frame, _ = multi_face_frame()
    records = [_record([20 + 45 * i, 0, 50, 60], i + 1) for i in range(8)]
    spots = []
    draw_faces(frame, records, layout=spots)
    _assert_apart(spots, frame.shape[1], frame.shape[0])
    assert all(y >= 0 for _, y, _, _ in spots)


def test_layout_prefers_above_then_below_and_keeps_faces_uncovered():
    boxes = [(100, 100, 80, 80), (100, 0, 80, 60)]
    spots = layout_labels(boxes, [(70, 20), (70, 20)], 640, 480)
    assert spots[0] == (100, 80, 70, 20)  # above
    assert spots[1] == (100, 60, 70, 20) or not _overlap(spots[1], boxes[0])
    _assert_apart(spots, 640, 480)


def test_label_names_the_face_by_number_or_by_track_in_a_video():
    assert label_text(_record([0, 0, 10, 10], 2)) == "2 happy 0.88"
    assert label_text(_record([0, 0, 10, 10], 1, track=7)) == "#7 happy 0.88"  # stable across frames


def test_label_text_is_readable_at_the_image_size():
    """On a 4× larger image the label grows with it (about 1/45 of the shorter side), so it reads the same."""
    frame, _ = multi_face_frame()
    big = cv2.resize(frame, (2560, 1920))
    small_spots, big_spots = [], []
    draw_faces(frame, [_record([42, 51, 63, 83], 1)], layout=small_spots)
    draw_faces(big, [_record([168, 204, 252, 332], 1)], layout=big_spots)
    assert small_spots[0][3] >= 18 and big_spots[0][3] >= 3.5 * small_spots[0][3]


def test_a_model_of_its_own_labels_gets_stable_colours():
    assert color_for("happy") == (0, 200, 255)
    assert color_for("yawning") == color_for("yawning") != color_for("winking")
    assert color_for("yawning") != (0, 255, 0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return "default" if DEFAULT_MODEL.is_file() else make_checkpoint(tmp_path_factory.mktemp("m") / "tiny.pt")


def test_predict_annotate_names_chart_files_by_face_number(model, tmp_path, capsys):
    photo, out, records = tmp_path / "group.png", tmp_path / "annotated", tmp_path / "faces.json"
    cv2.imwrite(str(photo), multi_face_frame()[0])
    assert main(["predict", str(photo), "--model", str(model), "--annotate", str(out), "--json", str(records),
                 "--quiet"]) == 0, capsys.readouterr().err
    faces = json.loads(records.read_text())
    assert [f["face"] for f in faces] == [1, 2, 3, 4]
    assert sorted(p.name for p in out.glob("group.face*.png")) == [f"group.face{n}.png" for n in (1, 2, 3, 4)]
    assert all(cv2.imread(str(out / f"group.face{n}.png")) is not None for n in (1, 2, 3, 4))
    drawn = cv2.imread(str(out / "group.jpg"))
    assert drawn.shape == multi_face_frame()[0].shape


def test_timeline_legend_is_outside_the_curves_and_y_says_probability():
    from ferkit.render.charts import timeline_figure
    from ferkit.render.plotting import pyplot

    rng = np.random.default_rng(0)
    series = {1: (np.arange(40), rng.dirichlet(np.ones(8), 40)), 3: (np.arange(10, 30), rng.dirichlet(np.ones(8), 20))}
    fig = timeline_figure(series, FERPLUS_EMOTIONS, fps=10)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == list(FERPLUS_EMOTIONS)
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer))
            assert ax.get_ylabel() == "probability"
        assert [ax.get_title(loc="left") for ax in fig.axes] == ["face #1", "face #3"]
        assert box.x1 <= fig.bbox.x1 + 1  # inside the picture, not cut off
    finally:
        pyplot().close(fig)
