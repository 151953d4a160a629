"""The regression guard: every shipped model, scored on PrivateTest exactly as `ferkit evaluate` scores it, may not
fall more than half a point below the figure docs/results.md records for it (its "Shipped models" table). A
FER+ model may have a second row, labels "ferplus strict", for the FER+ authors' test protocol
(`ferkit evaluate --ferplus-test strict`).

Needs the real FER2013 file (skips with the usual message without it); about 10 s a model on two CPU cores.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ferkit.runtime.models import shipped_models

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
TOLERANCE = 0.005


def recorded_figures(text: str) -> dict[tuple[str, str], dict]:
    """(`name`, labels) → {labels, tta, accuracy} from the rows of the '## Shipped models' table."""
    section = re.search(r"^## Shipped models\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if section is None:
        return {}
    figures = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([\w.-]+)`", cells[0]) if len(cells) >= 4 else None
        if match:
            figures[match.group(1), cells[1]] = {"labels": cells[1], "tta": cells[2],
                                                 "accuracy": float(cells[3].strip("*"))}
    return figures


def guarded_rows() -> list[tuple[str, str]]:
    """Every (shipped model, labels) row to check; a shipped model with no row still gets one, which then fails."""
    rows = set(recorded_figures(RESULTS.read_text()))
    return sorted(rows | {(name, "") for name in shipped_models() if not any(r[0] == name for r in rows)})


def test_results_md_records_every_shipped_model():
    figures = recorded_figures(RESULTS.read_text())
    missing = sorted(set(shipped_models()) - {name for name, _ in figures})
    assert not missing, f"shipped models with no PrivateTest figure in docs/results.md: {missing}"


def test_the_table_parser_reads_rows_and_ignores_the_rest():
    text = ("## Shipped models\n\n| model | labels | TTA | PrivateTest accuracy | command |\n| --- | --- | --- | --- | --- |\n"
            "| `default` | fer2013 | flip | **0.6807** | `ferkit evaluate ...` |\n"
            "| `ferplus` | ferplus | flip | 0.8378 | `ferkit evaluate ...` |\n"
            "| `ferplus` | ferplus strict | flip | 0.8725 | `ferkit evaluate ... --ferplus-test strict` |\n"
            "\n## Next\n| `other` | x | y | 0.1 | z |\n")
    assert recorded_figures(text) == {
        ("default", "fer2013"): {"labels": "fer2013", "tta": "flip", "accuracy": 0.6807},
        ("ferplus", "ferplus"): {"labels": "ferplus", "tta": "flip", "accuracy": 0.8378},
        ("ferplus", "ferplus strict"): {"labels": "ferplus strict", "tta": "flip", "accuracy": 0.8725}}


@pytest.mark.parametrize("name,labels", guarded_rows())
def test_shipped_model_holds_its_recorded_privatetest_accuracy(name, labels, fer2013_path, ferkit_cache):
    from ferkit.evaluate.evaluate import evaluate_classifier, evaluation_data
    from ferkit.labels import FERPLUS_EMOTIONS
    from ferkit.runtime.models import TorchClassifier

    recorded = recorded_figures(RESULTS.read_text()).get((name, labels))
    assert recorded is not None, f"{name}: no row in the Shipped models table of docs/results.md"
    assert labels in ("fer2013", "ferplus", "ferplus strict"), f"{name}: unknown labels {labels!r} in its row"
    classifier = TorchClassifier.load(name)
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
