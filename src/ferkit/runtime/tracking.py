"""Face tracks across video frames: greedy IoU matching with stable ids, and an exponential moving average of
each track's probabilities so labels do not flicker from frame to frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def box_iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return float(w * h / union) if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: tuple
    probabilities: np.ndarray  # smoothed
    first_frame: int
    last_frame: int
    hits: int = 1
    total: np.ndarray = field(default=None, repr=False)  # sum of raw probabilities, for the summary

    def summary(self, labels) -> dict:
        mean = self.total / max(self.hits, 1)
        best = int(np.argmax(mean))
        return {"track": self.id, "first_frame": self.first_frame, "last_frame": self.last_frame,
                "frames": self.hits, "emotion": labels[best], "score": round(float(mean[best]), 6),
                "mean_probabilities": {k: round(float(v), 6) for k, v in zip(labels, mean)}}


class IouTracker:
    """Assigns each detection of a frame to a track (stable integer ids, from 1).

    iou_threshold: the least overlap with a track's last box to continue it. max_age: frames a track may go
    unseen before it ends. alpha: weight of the newest frame in the moving average (1 = no smoothing).
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 10, alpha: float = 0.4):
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.alpha = alpha
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 1

    def update(self, frame: int, boxes, probabilities) -> list[tuple[int, np.ndarray]]:
        """Boxes (x, y, w, h) and raw probabilities of one frame → [(track id, smoothed probabilities)] in the
        order of the boxes."""
        probabilities = np.asarray(probabilities, np.float32).reshape(len(boxes), -1) if len(boxes) else []
        still = []
        for track in self.active:  # tracks unseen for more than max_age frames end before matching
            (still if frame - track.last_frame <= self.max_age else self.finished).append(track)
        self.active = still
        pairs = sorted(((box_iou(t.box, b), ti, bi) for ti, t in enumerate(self.active) for bi, b in enumerate(boxes)),
                       reverse=True)
        used_tracks, assigned = set(), {}
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_tracks or bi in assigned:
                continue
            used_tracks.add(ti)
            assigned[bi] = self.active[ti]
        out = []
        for bi, box in enumerate(boxes):
            p = probabilities[bi]
            track = assigned.get(bi)
            if track is None:
                track = Track(self._next_id, tuple(box), p.copy(), frame, frame, total=p.copy())
                self._next_id += 1
                self.active.append(track)
            else:
                track.probabilities = self.alpha * p + (1 - self.alpha) * track.probabilities
                track.box, track.last_frame = tuple(box), frame
                track.hits += 1
                track.total = track.total + p
            out.append((track.id, track.probabilities.copy()))
        return out

    def tracks(self) -> list[Track]:
        """Every track seen so far, by id."""
        return sorted(self.finished + self.active, key=lambda t: t.id)
