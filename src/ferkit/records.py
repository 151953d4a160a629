"""The face record: what recognition returns for each face, everywhere (Python API, `ferkit predict --json`, the
REST API, the web page), and how it flattens into a table row (`--csv`, video frame tables).

A record is a plain dict::

    {"source": str,                  # the file, "<array>", "<bytes>", "<PIL>", or the upload's name
     "frame": int | None,            # the frame index in a video or camera stream; None for a photo
     "face": int,                    # 1, 2, ... left to right (then top to bottom): the number drawn on its box
     "box": [x, y, w, h],            # the face in the image's pixels (ints)
     "emotion": str,                 # the most probable label
     "score": float,                 # its probability
     "probabilities": {label: p}}    # every label of the model, in the model's order (sum 1)

Video records add "track" (a face's stable id across frames), "time_s" (seconds from the start) and
"raw_emotion" (the frame's own top label before the track's smoothing; "emotion" and "probabilities" are
smoothed). Labels are the model's: FER2013's seven, or FER+'s eight (with contempt).
"""

from __future__ import annotations

import numpy as np

from ferkit.errors import FerkitError

# Columns of the table form, in order; then one column per label with its probability.
TABLE_COLUMNS = ("source", "frame", "face", "time_s", "track", "x", "y", "w", "h", "emotion", "score")


def face_record(source: str, box, probabilities: np.ndarray, labels, frame=None, face: int = 1) -> dict:
    """One face's record from its box and its probabilities (in the order of labels); face is its number in the
    image, counted from 1 in reading order."""
    best = int(np.argmax(probabilities))
    return {
        "source": source, "frame": frame, "face": int(face), "box": [int(v) for v in box], "emotion": labels[best],
        "score": round(float(probabilities[best]), 6),
        "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probabilities)},
    }


def smoothed_record(record: dict, track_id: int, probabilities: np.ndarray, labels, time_s: float | None) -> dict:
    """A video frame's record re-labelled with its track's smoothed probabilities."""
    best = int(probabilities.argmax())
    return {**record, "track": track_id, "time_s": None if time_s is None else round(time_s, 3),
            "emotion": labels[best], "score": round(float(probabilities[best]), 6),
            "probabilities": {k: round(float(v), 6) for k, v in zip(labels, probabilities)},
            "raw_emotion": record["emotion"]}


def _flat(record: dict, labels) -> dict:
    """The record's table values: TABLE_COLUMNS, then one probability per label (None where missing)."""
    x, y, w, h = record["box"]
    row = {"source": record.get("source"), "frame": record.get("frame"), "face": record.get("face"),
           "time_s": record.get("time_s"), "track": record.get("track"), "x": x, "y": y, "w": w, "h": h,
           "emotion": record["emotion"], "score": record["score"]}
    row.update({label: record["probabilities"].get(label) for label in labels})
    return row


def table_row(record: dict, labels) -> dict:
    """The record as one flat row: TABLE_COLUMNS, then one probability per label ("" where a value is missing)."""
    return {k: ("" if v is None else v) for k, v in _flat(record, labels).items()}


def _each_record(records):
    """Records one by one from records, or from lists of them (predict_batch's and predict_video's form)."""
    for item in records:
        if isinstance(item, dict):
            yield item
        elif isinstance(item, (list, tuple)):
            for record in item:
                if not isinstance(record, dict):
                    raise FerkitError(f"to_dataframe: a list holds a {type(record).__name__}, not a record")
                yield record
        else:
            raise FerkitError(f"to_dataframe takes records (dicts) or lists of them, not {type(item).__name__}")


def to_dataframe(records, labels=None):
    """A pandas DataFrame of face records, one row per face: the columns of TABLE_COLUMNS (source, frame, face,
    time_s, track, x, y, w, h, emotion, score), then one probability column per label.

    records: a list of records (``predict``), a list of lists of them (``predict_batch``), or any iterable of
    either, such as ``predict_video``'s generator. labels: the probability columns, in order; by default every
    label the records carry, in the order they first appear. Numbers stay numeric: a column with a value missing
    somewhere (a photo's frame, time_s and track) is float with NaN there. Needs pandas
    (``pip install pandas``; Ray Data installs it already)::

        import ferkit
        recognizer = ferkit.Recognizer()
        table = ferkit.to_dataframe(recognizer.predict_batch(["a.jpg", "b.jpg"]))
        table.groupby("emotion").size()
    """
    try:
        import pandas as pd
    except ImportError:
        raise FerkitError("to_dataframe needs pandas: pip install pandas") from None
    if isinstance(records, dict):
        records = [records]
    records = list(_each_record(records))
    try:
        if labels is None:
            labels = list(dict.fromkeys(label for record in records for label in record["probabilities"]))
        columns = [*TABLE_COLUMNS, *labels]
        table = pd.DataFrame([_flat(record, labels) for record in records], columns=columns)
        for column in columns:
            if column not in ("source", "emotion"):
                table[column] = pd.to_numeric(table[column])
    except (KeyError, TypeError, ValueError) as exc:  # a dict that is no face record, or one with a bad value
        raise FerkitError(f"to_dataframe: not a face record ({type(exc).__name__}: {exc})") from None
    return table
