"""What a run writes as it goes besides checkpoints: history.csv, optional TensorBoard scalars (curves.png:
ferkit.render.curves)."""

from __future__ import annotations

import csv
from pathlib import Path

HISTORY_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "seconds",
                  "img_per_s", "steps", "val_acc_raw", "swa_snapshots", "train_side"]
# val_acc_raw: the raw weights' accuracy beside an average (ema, swa); swa_snapshots: epochs in the swa average;
# train_side: the input side(s) of progressive resizing


def write_history(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        names = [name for name in HISTORY_FIELDS if any(name in row for row in history)]
        writer = csv.DictWriter(handle, names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


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


def epoch_line(row: dict, config, scored: bool, improved: bool, note: str, eta: str,
               split: str | None = None) -> str:
    """The one line a run logs after each epoch; split: what to call the validation split (FER2013's PublicTest, or
    validation for a user's folder set)."""
    split = split or config.val_split
    if scored:
        text = (f"{split} loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} "
                f"macro-F1 {row['val_macro_f1']:.4f}{' *' if improved else ''}")
        if "val_acc_raw" in row:
            text += f" (raw weights {row['val_acc_raw']:.4f})"
        text += note
    else:
        text = f"{split} not scored before {config.validate_from:g} of the run"
    if "train_side" in row:
        text += f" | trained at {row['train_side']} px"
    return (f"epoch {row['epoch']}/{config.epochs}  loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | {text} | "
            f"{row['seconds']:.0f}s {row['img_per_s']:.0f} img/s | ETA {eta}")
