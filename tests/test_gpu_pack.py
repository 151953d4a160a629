"""experiments/gpu/gpu_pack.py carries FER2013 to a GPU machine as lossless WebP mosaics: unpacking gives back every
row."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

TOOL = Path(__file__).resolve().parents[1] / "experiments" / "gpu" / "gpu_pack.py"


def _tool():
    spec = importlib.util.spec_from_file_location("gpu_pack", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_then_unpack_gives_back_the_same_rows(fer2013_path, tmp_path):
    from ferkit.data import load_dataset

    with gzip.open(fer2013_path, "rt") as handle:
        lines = [next(handle) for _ in range(2_101)]  # header + 2,100 rows: more than one 2,000-face mosaic
    source = tmp_path / "src" / "fer2013.csv"
    source.parent.mkdir()
    source.write_text("".join(lines))
    tool = _tool()
    tool.pack(source, tmp_path / "pack")
    unpacked = tool.unpack(tmp_path / "pack", tmp_path / "out")
    before, after = load_dataset(source), load_dataset(unpacked)
    assert len(list((tmp_path / "pack").glob("faces-*.webp"))) == 2
    assert np.array_equal(before.images, after.images)
    assert np.array_equal(before.labels, after.labels) and np.array_equal(before.usage, after.usage)
