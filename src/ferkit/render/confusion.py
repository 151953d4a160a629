"""The normalised confusion matrix as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.render.plotting import pyplot


def plot_confusion(path: str | Path, counts: np.ndarray, labels, title: str = "") -> None:
    plt = pyplot()
    counts = np.asarray(counts)
    totals = counts.sum(axis=1, keepdims=True)  # each row's share: the diagonal is the class's recall
    share = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 2, 1.0 * len(labels) + 1))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title or "normalised confusion matrix (rows: true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
