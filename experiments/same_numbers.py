"""Does a change to the training engine keep its numbers? Seven short real runs that mix every engine feature, and
the sha256 of their weights (last.pt, best.pt) and histories (without timings), to compare across two trees.

    PYTHONPATH=/tmp/before/src python experiments/same_numbers.py /tmp/before-runs   # the tree before the change
    python experiments/same_numbers.py /tmp/after-runs
    cmp /tmp/before-runs/same_numbers.json /tmp/after-runs/same_numbers.json

Each run trains 3 epochs of 384 Training rows (96 PublicTest) on one thread; the seven take about a minute. Run on
one machine: floating-point results may differ between CPUs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

import torch

RUNS = {
    "plain": ["--model", "simple_cnn", "--set", "augment={rotation: 10, shift: 0.1, hflip: true, erasing: 0.2, "
              "mixup: 0.2}", "--set", "label_smoothing=0.1"],
    "ema_progressive": ["--model", "vgg", "--set", "model_kwargs={width: 8}", "--set", "ema=0.99", "--set",
                        "progressive_size=32", "--set", "progressive_until=0.5", "--set", "validate_from=0.3",
                        "--set", "tta=[flip]"],
    "swa": ["--model", "vgg", "--set", "model_kwargs={width: 8}", "--set", "swa=0.7", "--set", "schedule=none",
            "--set", "class_weights=balanced"],
    "swa_average": ["--model", "simple_cnn", "--set", "swa=1.0", "--set", "swa_bn=average", "--optimizer", "adamw",
                    "--lr", "0.003"],
    "distil_offline": ["--model", "simple_cnn", "--set", "teachers=[fast]", "--set", "distill_weight=0.6", "--set",
                       "distill_temperature=2.0", "--schedule", "plateau"],
    "distil_online": ["--model", "simple_cnn", "--set", "teachers=[fast]", "--set", "distill_mode=online", "--set",
                      "augment={cutmix: 1.0, mix_prob: 0.5, hflip: true}", "--set", "warmup_epochs=1"],
    "init_from": ["--model", "vgg", "--set", "model_kwargs={width: 16, convs_per_stage: [2, 2, 2, 2], dropout: 0.2, "
                  "hidden: 128}", "--set", "init_from=fast", "--schedule", "onecycle", "--set", "class_weights=sqrt"],
}


def small_csv(data: Path, out: Path) -> Path:
    wanted = {"Training": 384, "PublicTest": 96, "PrivateTest": 8}
    lines = []
    with gzip.open(data, "rt") as handle:
        header = handle.readline()
        for line in handle:
            usage = line.rstrip().rsplit(",", 1)[-1]
            if wanted.get(usage, 0) > 0:
                lines.append(line)
                wanted[usage] -= 1
            if not any(wanted.values()):
                break
    out.write_text(header + "".join(lines))
    return out


def weights_digest(path: Path) -> str:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload["model_state"]  # a top-level key in both checkpoint formats
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="a folder for the runs and same_numbers.json")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013/fer2013.csv.gz"))
    args = parser.parse_args()
    from ferkit.cli import main as ferkit

    args.out.mkdir(parents=True, exist_ok=True)
    csv = small_csv(args.data, args.out / "small.csv")
    base = ["--data", str(csv), "--epochs", "3", "--batch-size", "32", "--threads", "1", "--no-progress", "--seed", "5"]
    result = {}
    for name, flags in RUNS.items():
        run = args.out / name
        if not (run / "last.pt").exists() and ferkit(["train", *base, *flags, "--out", str(run)]) != 0:
            raise SystemExit(f"{name}: training failed")
        rows = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
        keep = [i for i, column in enumerate(rows[0]) if column not in ("seconds", "img_per_s", "swa_snapshots")]
        result[name] = {"last": weights_digest(run / "last.pt"), "best": weights_digest(run / "best.pt"),
                        "history": [[row[i] for i in keep] for row in rows]}
        print(name, result[name]["last"], result[name]["best"], flush=True)
    (args.out / "same_numbers.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
