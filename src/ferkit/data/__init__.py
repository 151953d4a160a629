"""Data sources (FER2013 csv, FER+ votes, class folders), cleaning, augmentation; all become a FaceSet."""

from __future__ import annotations

from pathlib import Path

from ferkit.data.faceset import FaceSet
from ferkit.errors import FerkitError


def load_dataset(path: str | Path, labels: str = "fer2013", clean: bool = False, skip_bad_rows: bool = False,
                 ferplus_path: str | Path | None = None, ferplus_test: str = "plurality", log=None,
                 class_names=None) -> FaceSet:
    """Any supported source by path: a FER2013 csv(.gz), or a folder of class folders. ferplus_test: how FER+
    votes become labels, "plurality" or "strict" (ferkit.data.ferplus). log: where to say what was skipped (bad
    csv rows with skip_bad_rows, files of a folder that are not readable images). class_names: a model's labels
    that a folder's class folders must name (evaluation); None: the folder's own names (ferkit.data.folders)."""
    from ferkit.data.clean import clean_faceset
    from ferkit.data.fer2013 import load_fer2013
    from ferkit.data.ferplus import find_ferplus, load_ferplus
    from ferkit.data.folders import load_folder

    path = Path(path)
    if not path.exists():
        raise FerkitError(f"{path}: no such file or folder")
    if path.is_dir():
        if labels != "fer2013":
            raise FerkitError("FER+ labels come with the FER2013 csv, not with a folder data set")
        faces = load_folder(path, class_names=class_names)
    else:
        faces = load_fer2013(path, skip_bad_rows=skip_bad_rows)
        if labels == "ferplus":
            faces = load_ferplus(faces, ferplus_path or find_ferplus(path), test=ferplus_test)
        elif labels != "fer2013":
            raise FerkitError(f"unknown label set {labels!r}; expected fer2013 or ferplus")
    if log is not None:
        report_skipped(faces, path, log)
    return clean_faceset(faces) if clean else faces


def report_skipped(faces: FaceSet, path: Path, log) -> None:
    """One line each for the csv rows and the folder files a load passed over, with the first few named."""
    lines = faces.info.get("bad_lines") or []
    if lines:
        shown = ", ".join(map(str, lines[:5]))
        log(f"{path}: skipped {len(lines)} bad row(s) (lines {shown}{', …' if len(lines) > 5 else ''})")
    skipped = (faces.info.get("bad_files") or []) + (faces.info.get("skipped_files") or [])
    if skipped:
        shown = "; ".join(skipped[:3])
        log(f"{path}: skipped {len(skipped)} file(s) that are not readable images ({shown}"
            f"{'; …' if len(skipped) > 3 else ''})")


__all__ = ["FaceSet", "load_dataset"]
