"""The face record: what recognition returns for each face, everywhere (Python API, `ferkit predict --json`, the
REST API, the web page), and how it flattens into a table row (`--csv`, video frame tables).

A record is a plain dict::

    {"source": str,                  # the file, "<array>", "<bytes>", or the upload's name
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


def table_row(record: dict, labels) -> dict:
    """The record as one flat row: TABLE_COLUMNS, then one probability per label ("" where a value is missing)."""
    x, y, w, h = record["box"]
    row = {"source": record.get("source"), "frame": record.get("frame"), "face": record.get("face"),
           "time_s": record.get("time_s"), "track": record.get("track"), "x": x, "y": y, "w": w, "h": h, "emotion": record["emotion"],
           "score": record["score"]}
    row.update({label: record["probabilities"].get(label) for label in labels})
    return {k: ("" if v is None else v) for k, v in row.items()}
