"""What a batch job has to do: the inputs, each once, grouped into units of work (a chunk of photos, or one
video) in a stable order, so that the same command lists the same work again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.media.inputs import split_inputs


@dataclass(frozen=True)
class Input:
    source: str  # as the user spelled it: the `source` column of every table
    path: str    # absolute, so that workers whose working folder is another still find it
    kind: str    # "image" or "video"


def list_inputs(inputs) -> list[Input]:
    """Every image and video the inputs name (files, folders, patterns, @list.txt), each once."""
    images, videos = split_inputs(inputs)
    if not images and not videos:
        raise FerkitError("no images or videos found in the given inputs")
    seen, out = set(), []
    for kind, paths in (("image", images), ("video", videos)):
        for path in paths:
            absolute = str(Path(path).absolute())
            if absolute not in seen:
                seen.add(absolute)
                out.append(Input(str(path), absolute, kind))
    if not any(Path(i.path).exists() for i in out):  # a mistyped folder: say so before any worker starts
        raise FerkitError(f"{out[0].source}: no such file or folder" if len(out) == 1 else
                          f"none of the {len(out)} inputs exists (the first: {out[0].source})")
    return out


def units_of_work(inputs: list[Input], images_per_unit: int) -> list[dict]:
    """Rows for the pipeline: photos in chunks of images_per_unit (classified together, as `ferkit predict`
    does), each video alone (its frames must pass through one tracker in order)."""
    if images_per_unit < 1:
        raise FerkitError("--batch-size must be at least 1")
    images = [i for i in inputs if i.kind == "image"]
    units = [[i] for i in inputs if i.kind == "video"]  # videos first: the longest work starts earliest
    units += [images[start:start + images_per_unit] for start in range(0, len(images), images_per_unit)]
    return [{"unit": n, "kind": group[0].kind, "sources": [i.source for i in group], "paths": [i.path for i in group]}
            for n, group in enumerate(units)]
