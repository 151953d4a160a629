"""Recognition on images that are already face crops: each image is one face (no detection)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.media.images import read_image
from ferkit.records import face_record
from ferkit.vision.crop import face_crop


def predict_crop_files(paths, classifier, tta=None, batch_size: int = 256):
    """(records, errors): one record per readable image, one message per unreadable one."""
    records, errors = [], []
    for start in range(0, len(paths), batch_size):
        crops, boxes, sources = [], [], []
        for path in paths[start:start + batch_size]:
            try:
                image = read_image(path)
            except FerkitError as exc:
                errors.append(str(exc))
                continue
            crops.append(face_crop(image))
            boxes.append((0, 0, image.shape[1], image.shape[0]))
            sources.append(str(Path(path)))
        if not crops:
            continue
        probs = classifier.predict_proba(np.stack(crops), tta=tta)
        records += [face_record(s, b, p, classifier.labels) for s, b, p in zip(sources, boxes, probs)]
    return records, errors
