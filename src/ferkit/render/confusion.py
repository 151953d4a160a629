"""Figures for evaluation: the normalised confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.evaluate.metrics import normalise_rows


def plot_confusion(path: str | Path, counts: np.ndarray, labels, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    share = normalise_rows(np.asarray(counts))
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
