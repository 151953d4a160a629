"""Charts as PNG files: one face's expression probabilities, and an emotion timeline for a video."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.render.overlay import color_for
from ferkit.render.plotting import pyplot


def _rgb(label):
    b, g, r = color_for(label)
    return (r / 255, g / 255, b / 255)


def probability_chart(record: dict, path, title: str | None = None) -> Path:
    """A horizontal bar chart of one face's probabilities."""
    plt = pyplot()
    labels = list(record["probabilities"])
    values = [record["probabilities"][k] for k in labels]
    fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=100)
    ax.barh(labels[::-1], values[::-1], color=[_rgb(k) for k in labels[::-1]], edgecolor="black", linewidth=0.5)
    for i, v in enumerate(values[::-1]):
        ax.text(min(v + 0.02, 0.9), i, f"{v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title(title or f"{record['emotion']} ({record['score']:.2f})", fontsize=10)
    return _save(plt, fig, path)


def series_from_records(rows: list[dict], labels) -> dict:
    """track → (frame indices, probabilities frames × labels) from per-frame records ('frame', 'track',
    'probabilities'), the form timeline_chart draws."""
    by_track: dict = {}
    for row in sorted(rows, key=lambda r: r["frame"]):
        by_track.setdefault(row.get("track"), []).append(row)
    return {t: (np.array([r["frame"] for r in items]), np.array([[r["probabilities"][k] for k in labels]
                                                                  for r in items]))
            for t, items in by_track.items()}


def timeline_chart(series: dict, labels, path, fps: float | None = None, max_tracks: int = 6,
                   title: str | None = None) -> Path:
    """Per face track, the smoothed probability of every expression over time (one panel per track, the
    longest tracks first), written as a PNG. series: track → (frame indices, probabilities frames × labels)."""
    return _save(pyplot(), timeline_figure(series, labels, fps, max_tracks, title), path)


def timeline_figure(series, labels, fps: float | None = None, max_tracks: int = 6, title: str | None = None):
    """The figure timeline_chart writes: a panel per track titled "face #N" (the number on its box in the
    annotated video), y the probability, and one legend to the right of the panels, off the curves."""
    plt = pyplot()
    if isinstance(series, list):  # per-frame records
        series = series_from_records(series, labels)
    tracks = sorted(series, key=lambda t: -len(series[t][0]))[:max_tracks]
    panels = max(1, len(tracks))
    fig, axes = plt.subplots(panels, 1, figsize=(9, 1.1 + 1.9 * panels), dpi=100, sharex=True, squeeze=False)
    for ax, track in zip(axes[:, 0], tracks):
        frames, probabilities = series[track]
        t = np.asarray(frames, float)
        if fps:
            t = t / fps
        for k, label in enumerate(labels):
            ax.plot(t, probabilities[:, k], label=label, color=_rgb(label), linewidth=1.4)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"face #{track}" if track is not None else "face", loc="left", fontsize=9)
        ax.grid(alpha=0.3)
    if not tracks:
        axes[0, 0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0, 0].transAxes)
    axes[-1, 0].set_xlabel("seconds" if fps else "frame")
    fig.suptitle(title or "expression timeline", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.84, 1))  # the right strip holds the legend
    if tracks:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(0.85, 0.93),
                   fontsize=8, title="expression", title_fontsize=8, frameon=False)
    return fig


def _save(plt, fig, path) -> Path:
    """Lay out (unless laid out already), write (creating the folder) and close a figure."""
    if fig.get_layout_engine() is None and not fig.legends:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
