"""Recognition on video files, cameras and streams: detect + classify every frame, track faces with stable ids,
smooth their probabilities, and write the annotated video, the per-frame CSV, the timeline and a per-track
summary (process_video), or hand each frame's records to the caller as they come (video_records, behind
Recognizer.predict_video). Both run the same per-frame step, recognized_frames."""

from __future__ import annotations

import time
from array import array
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from ferkit.media.video import VideoReader, VideoWriter
from ferkit.records import smoothed_record
from ferkit.runtime.outputs import CsvWriter, write_json
from ferkit.runtime.tracking import IouTracker


class Timeline:
    """Each track's smoothed probabilities per frame, kept compact (4 bytes a number) for the timeline chart, so
    that a long video's memory grows by a few dozen bytes a face and frame, not by a record's kilobyte."""

    def __init__(self):
        self.frames: dict[int, array] = {}
        self.probabilities: dict[int, array] = {}

    def add(self, track: int, frame: int, probabilities) -> None:
        self.frames.setdefault(track, array("i")).append(frame)
        self.probabilities.setdefault(track, array("f")).extend(probabilities)

    def series(self, classes: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """track → (frame indices, probabilities frames × classes)."""
        return {t: (np.frombuffer(self.frames[t], np.int32),
                    np.frombuffer(self.probabilities[t], np.float32).reshape(-1, classes)) for t in self.frames}


class RecognizedFrame(NamedTuple):
    index: int  # the frame's index in the video
    frame: np.ndarray  # its pixels (BGR)
    records: list[dict]  # its faces' records, smoothed, with track ids
    tracked: list[tuple[int, np.ndarray]]  # (track id, smoothed probabilities as float32) per record


def recognized_frames(recognizer, reader: VideoReader, tracker: IouTracker, every: int = 1,
                      max_frames: int | None = None) -> Iterator[RecognizedFrame]:
    """The one per-frame step that process_video and video_records share: every `every`-th frame of an open
    reader (frames 0, every, 2 × every, ...) before frame max_frames, recognized and tracked. Nothing is kept
    from one frame to the next but the tracker's state."""
    labels = recognizer.labels
    frames = iter(reader)
    try:
        for index, frame in frames:
            if max_frames is not None and index >= max_frames:
                break
            if index % every:
                continue
            raw = recognizer.predict(frame, source=reader.name, frame=index)
            tracked = tracker.update(index, [r["box"] for r in raw],
                                     [[r["probabilities"][k] for k in labels] for r in raw])
            time_s = None if reader.is_camera else index / reader.fps
            records = [smoothed_record(r, tid, p, labels, time_s) for r, (tid, p) in zip(raw, tracked)]
            yield RecognizedFrame(index, frame, records, tracked)
    finally:
        frames.close()  # stops the reader's decoding thread when the caller stops early


def video_records(recognizer, source, every: int = 1, max_frames: int | None = None,
                  smoothing: float = 0.4) -> Iterator[list[dict]]:
    """Each recognized frame's records, as they come (Recognizer.predict_video is the documented form). Keeps
    nothing, so memory stays flat however long the video or stream; the reader is opened at the first frame
    asked for and released when the generator ends, is closed, or is collected."""
    tracker = IouTracker(alpha=smoothing)
    with VideoReader(source) as reader:
        steps = recognized_frames(recognizer, reader, tracker, every, max_frames)
        try:
            for step in steps:
                yield step.records
        finally:
            steps.close()


def process_video(recognizer, source, out_video=None, csv_path=None, timeline_path=None, summary_path=None,
                  show: bool = False, max_frames: int | None = None, smoothing: float = 0.4, progress: bool = True,
                  on_frame=None, window: str = "ferkit", keep_records: bool = True) -> dict:
    """Run the recognizer on every frame of source (a path, camera index or URL).

    Returns {"source", "frames", "fps", "truncated", "records" (per face per frame, smoothed, with a track id;
    empty unless keep_records), "faces_seen", "timeline" (Timeline.series), "tracks" (per-track summary),
    "seconds"}. show: a live window (press q or Esc to stop). Without keep_records, memory stays flat however
    long the video: the CSV is streamed, and the timeline keeps only the numbers its chart draws."""
    import cv2

    from ferkit.render.overlay import draw_faces

    labels = recognizer.labels
    tracker = IouTracker(alpha=smoothing)
    records, timeline, faces_seen = [], Timeline(), 0
    started = time.perf_counter()
    with VideoReader(source) as reader:
        writer = VideoWriter(out_video, reader.fps, (reader.width, reader.height)) if out_video else None
        table = CsvWriter(csv_path, labels) if csv_path else None
        bar = None
        if progress:
            from tqdm import tqdm

            total = reader.frame_count if max_frames is None else min(max_frames, reader.frame_count or max_frames)
            bar = tqdm(total=total, unit="frame", desc=Path(str(reader.name)).name, leave=False)
        steps = recognized_frames(recognizer, reader, tracker, max_frames=max_frames)
        try:
            for index, frame, frame_records, tracked in steps:
                for track_id, probabilities in tracked:
                    timeline.add(track_id, index, probabilities)
                faces_seen += len(frame_records)
                if keep_records:
                    records.extend(frame_records)
                if table:
                    table.write(frame_records)
                if writer or show:
                    annotated = draw_faces(frame, frame_records)
                    if writer:
                        writer.write(annotated)
                    if show:
                        cv2.imshow(window, annotated)
                        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                            break
                if on_frame:
                    on_frame(index, frame_records)
                if bar:
                    bar.update(1)
        finally:
            steps.close()
            if bar:
                bar.close()
            if writer:
                writer.close()
            if table:
                table.close()
            if show:
                cv2.destroyAllWindows()
        frames, truncated, fps, name = reader.frames_read, reader.truncated, reader.fps, reader.name
        frame_count = reader.frame_count
    summary = [t.summary(labels) for t in tracker.tracks()]
    if timeline_path:
        from ferkit.render.charts import timeline_chart

        timeline_chart(timeline.series(len(labels)), labels, timeline_path,
                       fps=None if isinstance(source, int) else fps,
                       title=f"{Path(str(name)).name}: expressions per face over time")
    result = {"source": name, "frames": frames, "frame_count": frame_count, "fps": fps, "truncated": truncated,
              "tracks": summary,
              "seconds": round(time.perf_counter() - started, 3)}
    if summary_path:
        write_json({k: v for k, v in result.items()}, summary_path)
    result.update(records=records, faces_seen=faces_seen, timeline=timeline.series(len(labels)))
    return result
