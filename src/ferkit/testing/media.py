"""Real media for tests and benchmarks: scikit-image photos, multi-face frames tiled from real faces, short videos
written from real frames, and a small untrained-but-real checkpoint (so export and runtime tests need no training).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from ferkit.classifier.shipped import WEIGHTS_DIR

DEFAULT_MODEL = WEIGHTS_DIR / "default.pt"
NO_DEFAULT = f"the shipped default model {DEFAULT_MODEL} is not there yet (it is added when its training ends)"


@functools.lru_cache(maxsize=None)
def astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@functools.lru_cache(maxsize=None)
def camera() -> np.ndarray:
    from skimage import data

    return data.camera()


@functools.lru_cache(maxsize=None)
def no_face_images() -> tuple[np.ndarray, ...]:
    """Real photos without a face: coffee cup, bricks, moon surface, rocket."""
    from skimage import data

    return (cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), data.brick(), data.moon(),
            cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR))


ASTRONAUT_HEAD = (150, 20, 210, 220)  # x, y, w, h around the astronaut's head with some shoulders
CAMERA_HEAD = (150, 70, 140, 170)


def head(image: np.ndarray, region) -> np.ndarray:
    x, y, w, h = region
    part = image[y:y + h, x:x + w]
    return part if part.ndim == 3 else cv2.cvtColor(part, cv2.COLOR_GRAY2BGR)


@functools.lru_cache(maxsize=None)
def multi_face_frame(width: int = 640, height: int = 480) -> tuple[np.ndarray, tuple[tuple[int, int, int, int], ...]]:
    """A width×height BGR frame with four real faces on the coffee photo: the astronaut, the cameraman, the
    astronaut mirrored and the astronaut smaller. Returns (frame, the four paste regions x, y, w, h)."""
    canvas = cv2.resize(no_face_images()[0], (width, height), interpolation=cv2.INTER_AREA)
    astro, cam = head(astronaut(), ASTRONAUT_HEAD), head(camera(), CAMERA_HEAD)
    tiles = [cv2.resize(astro, (150, 160)), cv2.resize(cam, (130, 160)), cv2.resize(astro[:, ::-1], (150, 160)),
             cv2.resize(astro, (105, 112))]
    spots = [(20, 20), (240, 30), (440, 20), (260, 300)]
    regions = []
    for tile, (x, y) in zip(tiles, spots):
        h, w = tile.shape[:2]
        canvas[y:y + h, x:x + w] = tile
        regions.append((x, y, w, h))
    return canvas, tuple(regions)


def one_face_frame(width: int = 640, height: int = 480, dx: int = 0) -> np.ndarray:
    """A width×height BGR frame with the astronaut's head on the coffee photo, shifted dx pixels."""
    canvas = cv2.resize(no_face_images()[0], (width, height), interpolation=cv2.INTER_AREA)
    astro = cv2.resize(head(astronaut(), ASTRONAUT_HEAD), (180, 192))
    x, y = 220 + dx, 140
    canvas[y:y + 192, x:x + 180] = astro
    return canvas


def write_video(path: Path, frames, fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def video_frames(count: int = 12) -> list[np.ndarray]:
    """Frames of a short real-media clip: the astronaut moving right, then two frames with no face, then the
    four-face frame."""
    frames = [one_face_frame(dx=4 * i) for i in range(count - 4)]
    frames += [cv2.resize(no_face_images()[0], (640, 480))] * 2
    frames += [multi_face_frame()[0]] * 2
    return frames


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / float(aw * ah + bw * bh - w * h)


def make_checkpoint(path: Path, arch: str = "simple_cnn", seed: int = 0, tta=()) -> Path:
    """A real ferkit checkpoint of an untrained model (weights from a fixed seed)."""
    import torch

    from ferkit.classifier.checkpoint import Checkpoint, ModelInfo, save_checkpoint
    from ferkit.models import count_parameters, create_model

    torch.manual_seed(seed)
    model = create_model(arch).eval()
    info = ModelInfo(arch=arch, tta=list(tta), parameters=count_parameters(model))
    return save_checkpoint(path, Checkpoint(info, model.state_dict()))
