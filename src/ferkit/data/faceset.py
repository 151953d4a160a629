"""FaceSet: the in-memory form every data source is turned into (48×48 uint8 faces plus labels)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ferkit.labels import FOLDER_SPLIT_NAMES, USAGES


@dataclass
class FaceSet:
    images: np.ndarray                  # uint8, N×48×48, grayscale
    labels: np.ndarray                  # int64, N; -1 where a row has no label
    label_names: tuple                  # class names, index = label
    usage: np.ndarray | None = None     # uint8 index into USAGES (FER2013), None for plain folders
    rows: np.ndarray | None = None      # row position in the source file (FER2013 / FER+ alignment)
    votes: np.ndarray | None = None     # float32 N×C vote distribution (FER+), rows sum to 1
    sources: list | None = None         # file paths (folder data sets)
    info: dict = field(default_factory=dict)  # how it was made: bad rows skipped, cleaning counts, ...

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def subset(self, index) -> "FaceSet":
        index = np.asarray(index)
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            usage=pick(self.usage),
            rows=pick(self.rows),
            votes=pick(self.votes),
            sources=None if self.sources is None else [self.sources[i] for i in _positions(index)],
            info=dict(self.info),
        )

    def split(self, name: str) -> "FaceSet":
        """Rows of one FER2013 split ('Training', 'PublicTest', 'PrivateTest')."""
        if self.usage is None:
            raise ValueError("this data set has no Training/PublicTest/PrivateTest splits")
        if name not in USAGES:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(USAGES)}")
        return self.subset(np.flatnonzero(self.usage == USAGES.index(name)))

    def split_name(self, name: str) -> str:
        """What messages call a split: FER2013's own name, or training / validation / test for a folder set."""
        return FOLDER_SPLIT_NAMES.get(name, name) if self.info.get("folder") else name

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels[self.labels >= 0], minlength=self.num_classes)


def _positions(index: np.ndarray) -> np.ndarray:
    return np.flatnonzero(index) if index.dtype == bool else index.reshape(-1)
