"""The report's page: every model's results (ferkit.evaluate.report.ModelResult) laid out as a Document (HTML and
Markdown, ferkit.render.document)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ferkit.evaluate.robustness import PERTURBATIONS, perturb
from ferkit.render import report_figures as figures
from ferkit.render.document import Document, slug
from ferkit.version import __version__

SALIENCY_PER_GROUP = 3  # Grad-CAM examples per true class, for correct and for wrong predictions


def perturbation_examples(face: np.ndarray, perturbations, seed: int = 0) -> bytes:
    """What each perturbation does to one face, at every level (a PNG)."""
    rows = []
    for p in [PERTURBATIONS[n] for n in (perturbations or PERTURBATIONS)]:
        images = [perturb(face[None], p.name, level, seed)[0] for level in p.levels]
        rows.append((p.title, images, [p.tick(v) for v in p.levels]))
    return figures.perturbation_examples_png(rows)


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _mean_perturbed(result, option: str = "none") -> float:
    """Mean accuracy over every non-identity level of every perturbation (one robustness number)."""
    values = []
    for name, accs in result.robustness.get(option, {}).items():
        p = PERTURBATIONS[name]
        values += [a for level, a in zip(p.levels, accs) if level != p.identity]
    return float(np.mean(values)) if values else float("nan")


def _robustness_series(result) -> dict:
    return {("no preprocessing" if option == "none" else option): curves
            for option, curves in result.robustness.items()}


def report_page(results: list, *, data, split: str, perturbations, preprocess, seconds: float,
           command: str = "") -> Document:
    names = [r.name for r in results]
    doc = Document(f"ferkit evaluation report: {', '.join(names)}")
    first = results[0]
    doc.paragraph(f"Data `{Path(str(data)).name}`, split {split} ({first.metrics['count']} images); temperature "
                  f"fitted on PublicTest; robustness on a fixed class-stratified sample of {first.robustness_count} "
                  f"images of the split, without test-time augmentation. ferkit {__version__}, "
                  f"{time.strftime('%Y-%m-%d %H:%M')}, {seconds:.0f} s."
                  + (f" Command: `{command}`" if command else ""), note=True)
    plist = [PERTURBATIONS[n] for n in (perturbations or PERTURBATIONS)]

    # 1. comparison first: one table for all models
    doc.heading("Model comparison", anchor="comparison")
    header = ["model", "architecture", "parameters", "TTA", "accuracy", "macro-F1", "ECE raw",
              "temperature", "ECE calibrated", "clean (sample)", "mean perturbed"]
    rows = []
    for r in results:
        c = r.calibration.get(split, {})
        rows.append([r.name, r.arch, f"{r.parameters:,}", ",".join(r.tta) or "none", _fmt(r.metrics["accuracy"]),
                     _fmt(r.metrics["macro_f1"]), _fmt(c["ece_before"]) if c else "–",
                     _fmt(r.calibration["temperature"], 3) if c else "–", _fmt(c["ece_after"]) if c else "–",
                     _fmt(_clean(r)), _fmt(_mean_perturbed(r))])
    doc.table(header, rows)
    doc.paragraph("clean (sample): accuracy on the robustness sample without TTA; mean perturbed: mean accuracy "
                  "over every perturbed level of every robustness curve (no preprocessing).", note=True)
    if len(results) > 1:
        series = {r.name: r.robustness.get("none", {}) for r in results}
        doc.figure("comparison-robustness", figures.curves_grid_png(plist, series, title="robustness, all models"),
                   "Robustness curves of every model overlaid (no preprocessing; the vertical line marks the "
                   "unperturbed level).")

    for r in results:
        doc.heading(f"{r.name}", anchor=slug(f"model-{r.name}"))
        doc.paragraph(f"Checkpoint `{r.source}` · {r.arch}, {r.parameters:,} parameters · labels "
                      f"{', '.join(r.labels)} · TTA {','.join(r.tta) or 'none'} · stored temperature "
                      f"{r.stored_temperature:g} · evaluated in {r.seconds:.0f} s", note=True)

        # 2. metrics
        doc.heading(f"{r.name}: metrics", level=3, anchor=slug(f"metrics-{r.name}"))
        doc.paragraph(f"Accuracy {r.metrics['accuracy']:.4f}, macro-F1 {r.metrics['macro_f1']:.4f} on "
                      f"{r.metrics['count']} {split} images.")
        doc.table(["class", "precision", "recall", "F1", "support"],
                  [[k, _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), v["support"]]
                   for k, v in r.metrics["per_class"].items()])
        doc.figure(f"{r.name}-confusion", r.figures["confusion"], "Normalised confusion matrix (rows: true class; "
                   "the diagonal is each class's recall).")
        if r.confused:
            doc.heading(f"{r.name}: most-confused pairs", level=3, anchor=slug(f"confused-{r.name}"))
            doc.table(["true", "predicted as", "images", "share of the true class"],
                      [[c["true"], c["predicted"], c["count"], f"{c['share']:.1%}"] for c in r.confused])
            if "confused" in r.figures:
                doc.figure(f"{r.name}-confused", r.figures["confused"],
                           "The most confident mistakes of each pair (p: the probability of the wrong class).")
        if r.run is not None:
            doc.heading(f"{r.name}: training curves", level=3, anchor=slug(f"curves-{r.name}"))
            if "curves" in r.figures:
                best = max(r.history, key=lambda h: h.get("val_acc", 0)) if r.history else None
                text = (f"{len(r.history)} epochs; best PublicTest accuracy {best['val_acc']:.4f} at epoch "
                        f"{int(best['epoch'])}." if best and "val_acc" in best else "")
                doc.figure(f"{r.name}-curves", r.figures["curves"], f"Loss and accuracy per epoch from "
                           f"`{r.run}`. {text}".strip())
            else:
                doc.paragraph(f"`{r.run}` has no history.csv or curves.png.", note=True)

        # 3. robustness
        doc.heading(f"{r.name}: robustness", level=3, anchor=slug(f"robustness-{r.name}"))
        doc.figure(f"{r.name}-robustness", figures.curves_grid_png(
            plist, _robustness_series(r), title=f"{r.name}: accuracy against perturbation strength"),
            f"Accuracy on {r.robustness_count} {split} images against each perturbation's strength; lighting "
            f"perturbations also with each preprocessing option ({', '.join(o for o in preprocess if o != 'none')})"
            f" applied to the perturbed crop.")
        gamma_rows = _light_table(r, preprocess)
        if gamma_rows:
            doc.paragraph("Does preprocessing help in low light? Accuracy against gamma (> 1 darker, < 1 brighter):")
            doc.table(["gamma"] + [("no preprocessing" if o == "none" else o) for o in preprocess
                                   if o in r.robustness], gamma_rows)

        # 4. calibration
        doc.heading(f"{r.name}: calibration", level=3, anchor=slug(f"calibration-{r.name}"))
        if r.calibration:
            c, v = r.calibration[split], r.calibration["PublicTest"]
            doc.paragraph(f"Temperature T = {r.calibration['temperature']:.3f} fitted on PublicTest "
                          f"({v['count']} images; NLL {v['nll_before']:.4f} → {v['nll_after']:.4f}). On {split}: "
                          f"ECE {c['ece_before']:.4f} → {c['ece_after']:.4f}, NLL {c['nll_before']:.4f} → "
                          f"{c['nll_after']:.4f} (15 equal-width confidence bins). The confidence changes, the "
                          f"predicted class does not. `ferkit calibrate --model CHECKPOINT --data CSV` writes T into "
                          f"the checkpoint, and predict then uses it (stored now: {r.stored_temperature:g}).")
            doc.figure(f"{r.name}-reliability", r.figures["reliability"],
                       "Reliability diagrams: accuracy per confidence bin (blue), the gap to the bin's mean "
                       "confidence (orange), the share of images per bin (gray); the dashed diagonal is perfect "
                       "calibration.")
        else:
            doc.paragraph("No PublicTest split in this data: calibration skipped.", note=True)

        # 5. saliency
        doc.heading(f"{r.name}: saliency", level=3, anchor=slug(f"saliency-{r.name}"))
        if "saliency" in r.figures:
            doc.figure(f"{r.name}-saliency", r.figures["saliency"],
                       f"Grad-CAM of the predicted class for the {SALIENCY_PER_GROUP} most confident correct (✓) and "
                       f"wrong (✗) predictions of each true class (rows); captions give the predicted class and its "
                       f"probability. Red: evidence for the prediction.")
        else:
            doc.paragraph("No examples to explain.", note=True)

    doc.heading("Perturbations", anchor="perturbations")
    doc.paragraph("What each robustness perturbation does to one face of the split, at every level used above "
                  "(noise and patches are random but fixed by the seed).")
    return doc


def _clean(r) -> float:
    for name, accs in r.robustness.get("none", {}).items():
        p = PERTURBATIONS[name]
        return accs[list(p.levels).index(p.identity)]
    return float("nan")


def _light_table(r, preprocess) -> list[list[str]]:
    options = [o for o in preprocess if o in r.robustness and "gamma" in r.robustness[o]]
    if not options:
        return []
    levels = PERTURBATIONS["gamma"].levels
    return [[f"{level:g}"] + [_fmt(r.robustness[o]["gamma"][i], 3) for o in options]
            for i, level in enumerate(levels)]
