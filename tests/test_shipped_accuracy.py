"""The regression guard: every shipped model, scored on PrivateTest exactly as `ferkit evaluate` scores it, may not
fall more than half a point below the figure docs/results.md records for it (its "Shipped models" table). A
FER+ model may have a second row, labels "ferplus strict", for the FER+ authors' test protocol
(`ferkit evaluate --ferplus-test strict`). A row whose model reads "`NAME` int8" is the model's INT8 graph in ONNX
Runtime (`--backend onnx --precision int8`), what recognition runs; its recorded figure may not be more than 0.3
point under its fp32 row's.

Needs the real FER2013 file (skips with the usual message without it). Each distinct face is scored once per
model: the strict FER+ row's faces are among the plurality row's (measured on a 2-core AMD EPYC without AVX-512,
`ferplus` with its ten views took 344 s for its first row and 294 s more for its second before this).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

from ferkit.classifier.shipped import shipped_models

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
TOLERANCE = 0.005


def recorded_figures(text: str) -> dict[tuple[str, str], dict]:
    """(name, labels) → {labels, tta, accuracy} from the rows of the '## Shipped models' table; name is the model's
    (`default`) or, for its INT8 graph, the model's and " int8" (`default` int8)."""
    section = re.search(r"^## Shipped models\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if section is None:
        return {}
    figures = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([\w.-]+)`( int8)?", cells[0]) if len(cells) >= 4 else None
        if match:
            figures[match.group(1) + (match.group(2) or ""), cells[1]] = {"labels": cells[1], "tta": cells[2],
                                                 "accuracy": float(cells[3].strip("*"))}
    return figures


def guarded_rows() -> list[tuple[str, str]]:
    """Every (shipped model, labels) row to check; a shipped model with no row still gets one, which then fails."""
    rows = set(recorded_figures(RESULTS.read_text()))
    return sorted(rows | {(name, "") for name in shipped_models() if not any(r[0] == name for r in rows)})


def test_results_md_records_every_shipped_model_and_its_int8_graph():
    figures = recorded_figures(RESULTS.read_text())
    wanted = set(shipped_models()) | {f"{name} int8" for name in shipped_models()}
    missing = sorted(wanted - {name for name, _ in figures})
    assert not missing, f"shipped models with no PrivateTest figure in docs/results.md: {missing}"


def test_each_int8_graph_is_within_0_3_point_of_its_fp32_graph():
    figures = recorded_figures(RESULTS.read_text())
    for (name, labels), row in figures.items():
        if name.endswith(" int8"):
            fp32 = figures[name.split()[0], labels]["accuracy"]
            assert row["accuracy"] >= fp32 - 0.003, f"{name} ({labels}): {row['accuracy']} against fp32 {fp32}"


def test_the_table_parser_reads_rows_and_ignores_the_rest():
    text = ("## Shipped models\n\n| model | labels | TTA | PrivateTest accuracy | command |\n"
            "| --- | --- | --- | --- | --- |\n"
            "| `default` | fer2013 | flip | **0.6807** | `ferkit evaluate ...` |\n"
            "| `ferplus` | ferplus | flip | 0.8378 | `ferkit evaluate ...` |\n"
            "| `ferplus` int8 | ferplus | flip | 0.8370 | `ferkit evaluate ... --precision int8` |\n"
            "| `ferplus` | ferplus strict | flip | 0.8725 | `ferkit evaluate ... --ferplus-test strict` |\n"
            "\n## Next\n| `other` | x | y | 0.1 | z |\n")
    assert recorded_figures(text) == {
        ("default", "fer2013"): {"labels": "fer2013", "tta": "flip", "accuracy": 0.6807},
        ("ferplus", "ferplus"): {"labels": "ferplus", "tta": "flip", "accuracy": 0.8378},
        ("ferplus int8", "ferplus"): {"labels": "ferplus", "tta": "flip", "accuracy": 0.8370},
        ("ferplus", "ferplus strict"): {"labels": "ferplus strict", "tta": "flip", "accuracy": 0.8725}}


class RememberingClassifier:
    """A classifier that scores each distinct face once: an identical image always gets identical probabilities."""

    def __init__(self, classifier):
        self.inner, self.labels, self.tta = classifier, classifier.labels, classifier.tta
        self.seen: dict[bytes, np.ndarray] = {}

    def predict_proba(self, crops: np.ndarray, tta=None) -> np.ndarray:
        keys = [crop.tobytes() for crop in crops]
        new = list({key: i for i, key in enumerate(keys) if key not in self.seen}.values())
        if new:
            self.seen.update(zip((keys[i] for i in new), self.inner.predict_proba(crops[new], tta=tta)))
        return np.stack([self.seen[key] for key in keys])


@functools.lru_cache(maxsize=None)
def shipped_classifier(name: str) -> RememberingClassifier:
    """`name` in PyTorch, or, for "NAME int8", its INT8 graph in ONNX Runtime."""
    from ferkit.classifier.onnx_classifier import OnnxClassifier
    from ferkit.classifier.torch_classifier import TorchClassifier

    if name.endswith(" int8"):
        return RememberingClassifier(OnnxClassifier.load(name.split()[0], precision="int8"))
    return RememberingClassifier(TorchClassifier.load(name))


@pytest.mark.parametrize("name,labels", guarded_rows())
def test_shipped_model_holds_its_recorded_privatetest_accuracy(name, labels, fer2013_path, ferkit_cache):
    from ferkit.evaluate.scoring import evaluate_classifier, evaluation_data
    from ferkit.labels import FERPLUS_EMOTIONS

    recorded = recorded_figures(RESULTS.read_text()).get((name, labels))
    assert recorded is not None, f"{name}: no row in the Shipped models table of docs/results.md"
    assert labels in ("fer2013", "ferplus", "ferplus strict"), f"{name}: unknown labels {labels!r} in its row"
    classifier = shipped_classifier(name)
    if tuple(classifier.labels) == FERPLUS_EMOTIONS and not any(
            (fer2013_path.parent / f).is_file() for f in ("fer2013new.csv.gz", "fer2013new.csv")):
        pytest.skip(f"fer2013new.csv(.gz) not found beside {fer2013_path}")
    assert (tuple(classifier.labels) == FERPLUS_EMOTIONS) == labels.startswith("ferplus"), (
        f"{name}: its row says {labels} labels")
    faces = evaluation_data(fer2013_path, "PrivateTest", classifier.labels,
                            ferplus_test="strict" if labels == "ferplus strict" else "plurality")
    report = evaluate_classifier(classifier, faces)  # the model's own TTA, as `ferkit evaluate` applies it
    assert (",".join(report["tta"]) or "none") == recorded["tta"], f"{name}: TTA differs from the recorded row"
    assert report["accuracy"] >= recorded["accuracy"] - TOLERANCE, (
        f"{name}: PrivateTest {report['accuracy']:.4f}, more than {TOLERANCE * 100:.1f} points below the "
        f"{recorded['accuracy']:.4f} recorded in docs/results.md")
