"""What a run writes as it goes: history.csv, curves.png, optional TensorBoard scalars."""

from __future__ import annotations

import csv
from pathlib import Path

HISTORY_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "seconds",
                  "img_per_s", "steps", "val_acc_raw", "train_side"]
# val_acc_raw: the raw weights' accuracy when ema is on; train_side: the input side(s) of progressive resizing


def write_history(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        names = [name for name in HISTORY_FIELDS if any(name in row for row in history)]
        writer = csv.DictWriter(handle, names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


class TensorBoardLogger:
    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from ferkit.errors import FerkitError

            raise FerkitError("--tensorboard needs the tensorboard package: pip install 'ferkit[tensorboard]'") \
                from None
        self.writer = SummaryWriter(str(log_dir))

    def log(self, row: dict) -> None:
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
