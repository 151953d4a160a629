"""Recognition on video files, cameras and streams: detect + classify every frame, track faces with stable ids,
smooth their probabilities, and write the annotated video, the per-frame CSV, the timeline and a per-track
summary."""

from __future__ import annotations

import time
from array import array
from pathlib import Path

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
        try:
            for index, frame in reader:
                if max_frames is not None and index >= max_frames:
                    break
                raw = recognizer.predict(frame, source=reader.name, frame=index)
                tracked = tracker.update(index, [r["box"] for r in raw],
                                         [[r["probabilities"][k] for k in labels] for r in raw])
                time_s = None if reader.is_camera else index / reader.fps
                frame_records = [smoothed_record(r, tid, p, labels, time_s) for r, (tid, p) in zip(raw, tracked)]
                for track_id, probabilities in tracked:
                    timeline.add(track_id, index, probabilities)
                faces_seen += len(frame_records)
                if keep_records:
                    records.extend(frame_records)
                if table:
                    table.write(frame_records)
                if writer or show:
                    annotated = draw_faces(frame, frame_records, bars=True)
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
