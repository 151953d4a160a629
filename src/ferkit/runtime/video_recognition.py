"""Recognition on video files, cameras and streams: detect + classify every frame, track faces with stable ids,
smooth their probabilities, and write the annotated video, the per-frame CSV, the timeline and a per-track
summary (process_video), or hand each frame's records to the caller as they come (video_records, behind
Recognizer.predict_video). Both run the same per-frame step, recognized_frames."""

from __future__ import annotations

import time
from array import array
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from ferkit.errors import FerkitError
from ferkit.media.video import VideoReader, VideoWriter
from ferkit.records import smoothed_record
from ferkit.runtime.outputs import CsvWriter, write_json
from ferkit.runtime.tracking import IouTracker
from ferkit.sessions import available_cores


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


def check_workers(workers, where: str = "") -> None:
    """One line for a `workers` that is neither None nor a whole number of 1 or more."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise FerkitError(f"{where}workers must be None or a whole number, 1 or more (got {workers!r})")


def frame_workers(reader: VideoReader, workers: int | None) -> int:
    """How many frames to recognise at once: by default one per core (at most 4) for a file, where throughput is
    what counts; one for a camera or stream, where each frame should be shown as soon as it can be."""
    check_workers(workers)
    if workers is not None:
        return workers
    return 1 if reader.is_camera else min(4, available_cores())


def _wanted_frames(frames, every: int, max_frames: int | None):
    for index, frame in frames:
        if max_frames is not None and index >= max_frames:
            return
        if not index % every:
            yield index, frame


def _frame_predictions(recognizer, reader: VideoReader, every: int, max_frames: int | None, workers: int):
    """(index, frame, raw records) of the frames to recognise, in order. With several workers, up to twice as
    many frames are in flight on a thread pool (ONNX Runtime releases the GIL); the order-dependent tracking is
    left to the caller."""
    frames = iter(reader)
    twin = recognizer.for_frames(workers)
    try:
        if twin is recognizer:  # one worker, or parts (a Haar detector, a torch model) not known to be thread-safe
            for index, frame in _wanted_frames(frames, every, max_frames):
                yield index, frame, recognizer.predict(frame, source=reader.name, frame=index)
            return
        pending = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="ferkit-frame") as pool:
            try:
                for index, frame in _wanted_frames(frames, every, max_frames):
                    pending.append((index, frame, pool.submit(twin.predict, frame, source=reader.name, frame=index)))
                    if len(pending) >= 2 * workers:
                        index, frame, future = pending.popleft()
                        yield index, frame, future.result()
                while pending:
                    index, frame, future = pending.popleft()
                    yield index, frame, future.result()
            finally:
                for *_, future in pending:  # the caller stopped early, or a frame failed: drop the rest
                    future.cancel()
    finally:
        frames.close()  # stops the reader's decoding thread when the caller stops early


def recognized_frames(recognizer, reader: VideoReader, tracker: IouTracker, every: int = 1,
                      max_frames: int | None = None, workers: int = 1) -> Iterator[RecognizedFrame]:
    """The one per-frame step that process_video and video_records share: every `every`-th frame of an open
    reader (frames 0, every, 2 × every, ...) before frame max_frames, recognized and tracked, `workers` frames
    at a time (frame_workers). Nothing is kept from one frame to the next but the tracker's state and the frames
    in flight."""
    labels = recognizer.labels
    predictions = _frame_predictions(recognizer, reader, every, max_frames, workers)
    try:
        for index, frame, raw in predictions:
            tracked = tracker.update(index, [r["box"] for r in raw],
                                     [[r["probabilities"][k] for k in labels] for r in raw])
            time_s = None if reader.is_camera else index / reader.fps
            records = [smoothed_record(r, tid, p, labels, time_s) for r, (tid, p) in zip(raw, tracked)]
            yield RecognizedFrame(index, frame, records, tracked)
    finally:
        predictions.close()  # stops the workers and the reader's decoding thread when the caller stops early


def video_records(recognizer, source, every: int = 1, max_frames: int | None = None,
                  smoothing: float = 0.4, workers: int | None = None) -> Iterator[list[dict]]:
    """Each recognized frame's records, as they come (Recognizer.predict_video is the documented form). Keeps
    nothing, so memory stays flat however long the video or stream; the reader is opened at the first frame
    asked for and released when the generator ends, is closed, or is collected."""
    tracker = IouTracker(alpha=smoothing)
    with VideoReader(source) as reader:
        steps = recognized_frames(recognizer, reader, tracker, every, max_frames, frame_workers(reader, workers))
        try:
            for step in steps:
                yield step.records
        finally:
            steps.close()


def process_video(recognizer, source, out_video=None, csv_path=None, timeline_path=None, summary_path=None,
                  show: bool = False, max_frames: int | None = None, smoothing: float = 0.4, progress: bool = True,
                  on_frame=None, window: str = "ferkit", keep_records: bool = True, workers: int | None = None) -> dict:
    """Run the recognizer on every frame of source (a path, camera index or URL).

    Returns {"source", "frames", "fps", "truncated", "records" (per face per frame, smoothed, with a track id;
    empty unless keep_records), "faces_seen", "timeline" (Timeline.series), "tracks" (per-track summary),
    "seconds"}. show: a live window (press q or Esc to stop). Without keep_records, memory stays flat however
    long the video: the CSV is streamed, and the timeline keeps only the numbers its chart draws. workers: frames
    recognised at once (None: frame_workers' choice; the records are the same either way)."""
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
        steps = recognized_frames(recognizer, reader, tracker, max_frames=max_frames,
                                  workers=frame_workers(reader, workers))
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
