"""A training run's loss and accuracy per epoch (curves.png, and the report's training-curves figure)."""

from __future__ import annotations

from pathlib import Path

from ferkit.render.plotting import pyplot


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [row[f"train_{key}"] for row in history], label="train", marker=".")
        ax.plot(epochs, [row[f"val_{key}"] for row in history], label="PublicTest", marker=".")
        if key == "acc" and "val_acc_raw" in history[0]:
            ax.plot(epochs, [row["val_acc_raw"] for row in history], label="PublicTest, raw weights",
                    linestyle="--", alpha=0.7)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
