"""`ferkit report`: one page per set of models — metrics, robustness, calibration, saliency, comparison.

    build_report(["default"], "fer2013.csv.gz", "report/")  →  report/report.html (self-contained),
    report/report.md + report/figures/*.png, report/report.json (every number on the page)

Everything is measured on one split (PrivateTest by default); the temperature is fitted on PublicTest. The
robustness passes (95 per model) run on a fixed, class-stratified sample of the split, without test-time
augmentation, in ONNX Runtime; unless given, the sample's size is what fits in about ROBUSTNESS_SECONDS at the
model's measured speed (200 to 1500 images), so one model takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.evaluate import calibration as cal
from ferkit.evaluate.metrics import classification_report, normalise_rows
from ferkit.evaluate.report_page import SALIENCY_PER_GROUP, perturbation_examples, report_page
from ferkit.evaluate.robustness import DEFAULT_PREPROCESS, PERTURBATIONS, plan, robustness_curves, stratified_sample
from ferkit.evaluate.scoring import training_overlap_warning
from ferkit.render import report_figures as figures

CONFUSED_PAIRS = 5
PAIR_EXAMPLES = 6
MAX_ROBUSTNESS_SIZE = 1500    # images per robustness pass when time allows
MIN_ROBUSTNESS_SIZE = 200     # ... and never fewer, however slow the model
ROBUSTNESS_SECONDS = 300.0    # time aimed at for a model's robustness passes when the size is automatic


@dataclass
class ModelResult:
    name: str
    source: str
    arch: str
    parameters: int
    labels: tuple
    tta: list
    stored_temperature: float
    metrics: dict
    calibration: dict = field(default_factory=dict)
    robustness: dict = field(default_factory=dict)
    robustness_count: int = 0
    history: list = field(default_factory=list)
    run: str | None = None
    figures: dict = field(default_factory=dict)
    confused: list = field(default_factory=list)
    seconds: float = 0.0
    warning: str | None = None  # the split scored includes images the model trained on


def read_history(run_dir: str | Path) -> list[dict]:
    """history.csv of a training run as a list of rows of floats ([] when there is none)."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            try:
                rows.append({k: float(v) for k, v in row.items() if v not in (None, "")})
            except ValueError:
                continue
    return rows


def _split(cache: dict, data, which: str, labels, clean: bool, subset: int, seed: int, skip_bad_rows: bool = False):
    """One split of the data for a label set, loaded once per report (a fixed stratified sample with subset)."""
    from ferkit.evaluate.scoring import evaluation_data

    key = (tuple(labels), which)
    if key not in cache:
        cache[key] = _sample(evaluation_data(data, which, labels, clean=clean, skip_bad_rows=skip_bad_rows), subset,
                             seed)
    return cache[key]


def _runner(classifier, backend: str, threads=None):
    """What runs the robustness passes: the model in ONNX Runtime (default) or the PyTorch classifier itself."""
    if backend == "onnx":
        from ferkit.classifier.onnx_classifier import OnnxClassifier

        return OnnxClassifier.load(classifier.source, threads=threads)
    if backend == "torch":
        return classifier
    raise FerkitError(f"unknown backend {backend!r}; choose onnx or torch")


def _sample(faces, size: int, seed: int):
    return faces if not size or size >= len(faces) else faces.subset(stratified_sample(faces.labels, size, seed))


def _confused_pairs(counts: np.ndarray, count: int = CONFUSED_PAIRS) -> list[tuple[int, int, int, float]]:
    """(true, predicted, images, share of the true class) for the largest off-diagonal counts."""
    share = normalise_rows(counts)
    cells = [(int(counts[i, j]), i, j) for i in range(len(counts)) for j in range(len(counts)) if i != j]
    cells = sorted((c for c in cells if c[0] > 0), key=lambda c: (-c[0], c[1], c[2]))[:count]
    return [(i, j, n, float(share[i, j])) for n, i, j in cells]


class _Progress:
    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="step", desc="report", disable=not enabled, dynamic_ncols=True)

    def stage(self, text: str) -> None:
        self.bar.set_description_str(text[:48])

    def __call__(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _display_names(models) -> list[str]:
    names, used = [], {}
    for model in models:
        text = str(model)
        path = Path(text)
        base = path.name if path.exists() and path.name not in ("best.pt", "last.pt") else text
        if path.exists() and path.name in ("best.pt", "last.pt"):
            base = f"{path.parent.name}/{path.name}"
        used[base] = used.get(base, 0) + 1
        names.append(base if used[base] == 1 else f"{base} ({used[base]})")
    return names


def evaluate_model(name: str, model, data, split: str, progress: _Progress, *, run=None, subset: int = 0,
                   calibration_split: str = "PublicTest", robustness_size: int | None = None,
                   robustness_seconds: float = ROBUSTNESS_SECONDS,
                   perturbations=None, preprocess=DEFAULT_PREPROCESS, backend: str = "onnx", threads=None,
                   seed: int = 0, clean: bool = False, data_cache: dict | None = None,
                   skip_bad_rows: bool = False) -> ModelResult:
    from ferkit.classifier.torch_classifier import TorchClassifier
    from ferkit.evaluate.saliency import grad_cam, pick_examples
    from ferkit.models import count_parameters

    started = time.time()
    data_cache = {} if data_cache is None else data_cache
    progress.stage(f"{name}: metrics")
    classifier = TorchClassifier.load(model)
    labels = classifier.labels

    def split_faces(which):
        return _split(data_cache, data, which, labels, clean, subset, seed, skip_bad_rows)

    faces = split_faces(split)
    logits = classifier.predict_logits(faces.images)
    probs = cal.softmax(logits, classifier.temperature)
    pred = probs.argmax(1)
    metrics = classification_report(faces.labels, pred, labels)
    result = ModelResult(name=name, source=classifier.source, arch=classifier.arch,
                         parameters=int(classifier.info.parameters or count_parameters(classifier.model)),
                         labels=tuple(labels), tta=list(classifier.tta), stored_temperature=classifier.temperature,
                         metrics=metrics,
                         warning=training_overlap_warning(classifier.info, data, faces, split))
    counts = np.asarray(metrics["confusion_matrix"])
    result.figures["confusion"] = figures.confusion_png(
        counts, labels, title=f"{name} on {split}: accuracy {metrics['accuracy']:.4f}")

    # the most-confused pairs, each with its most confident mistakes
    rows = []
    for i, j, n, share in _confused_pairs(counts):
        idx = np.flatnonzero((faces.labels == i) & (pred == j))
        idx = idx[np.argsort(-probs[idx, j], kind="stable")][:PAIR_EXAMPLES]
        result.confused.append({"true": labels[i], "predicted": labels[j], "count": n, "share": share})
        rows.append((f"{labels[i]} → {labels[j]}\n{n} images ({share:.0%})", [faces.images[k] for k in idx],
                     [f"p={probs[k, j]:.2f}" for k in idx]))
    if rows:
        result.figures["confused"] = figures.image_rows_png(rows, PAIR_EXAMPLES)
    progress(1)

    # training curves
    run_dir = Path(run) if run else (Path(str(model)) if Path(str(model)).is_dir() else None)
    if run_dir is not None:
        result.run = str(run_dir)
        result.history = read_history(run_dir)
        if result.history:
            result.figures["curves"] = figures.curves_png(result.history, title=f"{name}: {run_dir.name}")
        elif (run_dir / "curves.png").is_file():
            result.figures["curves"] = (run_dir / "curves.png").read_bytes()

    # calibration: temperature fitted on PublicTest, judged on the report split
    progress.stage(f"{name}: calibration")
    if faces.usage is not None and calibration_split != split:
        val = split_faces(calibration_split)
        val_logits = classifier.predict_logits(val.images)
        temperature = cal.fit_temperature(val_logits, val.labels)
        result.calibration = {
            "fitted_on": calibration_split, "temperature": temperature,
            "stored_temperature": classifier.temperature,
            calibration_split: cal.calibration_summary(val_logits, val.labels, temperature),
            split: cal.calibration_summary(logits, faces.labels, temperature)}
        result.figures["reliability"] = figures.reliability_png([
            (f"{name}, {split}: raw (T = 1)", cal.reliability_bins(cal.softmax(logits), faces.labels),
             result.calibration[split]["ece_before"]),
            (f"after temperature scaling (T = {temperature:.3f})",
             cal.reliability_bins(cal.softmax(logits, temperature), faces.labels),
             result.calibration[split]["ece_after"])])
    progress(1)

    # saliency
    progress.stage(f"{name}: Grad-CAM")
    picks = pick_examples(faces.labels, probs, SALIENCY_PER_GROUP)
    chosen = [k for c in sorted(picks) for kind in ("correct", "wrong") for k in picks[c][kind]]
    if chosen:
        maps, _ = grad_cam(classifier.model, faces.images[chosen], num_classes=len(labels))
        lookup = dict(zip(chosen, maps))
        saliency_rows = []
        for c in sorted(picks):
            cells = []
            for group, kind in enumerate(("correct", "wrong")):
                for slot, k in enumerate(picks[c][kind]):
                    mark = "✓" if kind == "correct" else "✗"
                    cells.append((faces.images[k], lookup[k], f"{mark} {labels[pred[k]]} {probs[k, pred[k]]:.2f}",
                                  group * SALIENCY_PER_GROUP + slot))
            saliency_rows.append((f"{labels[c]}", cells))
        result.figures["saliency"] = figures.saliency_png(saliency_rows, 2 * SALIENCY_PER_GROUP,
                                                          split_at=SALIENCY_PER_GROUP)
    progress(1)

    # robustness
    progress.stage(f"{name}: robustness")
    runner = _runner(classifier, backend, threads)
    if robustness_size is None:
        robustness_size = automatic_size(runner, faces.images, len(plan(perturbations, preprocess)),
                                         robustness_seconds)
    sample = faces.subset(stratified_sample(faces.labels, robustness_size, seed))
    result.robustness_count = len(sample)
    result.robustness = robustness_curves(runner, sample.images, sample.labels, perturbations, preprocess,
                                          tta=(), seed=seed, progress=progress)
    result.seconds = time.time() - started
    return result


def automatic_size(runner, images: np.ndarray, passes: int, seconds: float = ROBUSTNESS_SECONDS) -> int:
    """How many images each of `passes` robustness passes can take to finish in about `seconds`, from the
    runner's measured speed, within MIN_ROBUSTNESS_SIZE..MAX_ROBUSTNESS_SIZE."""
    probe = images[:256]
    if len(probe) == 0:
        return MIN_ROBUSTNESS_SIZE
    runner.predict_proba(probe[:32], tta=[])  # warm-up
    started = time.perf_counter()
    runner.predict_proba(probe, tta=[])
    per_second = len(probe) / max(time.perf_counter() - started, 1e-6)
    size = int(0.85 * seconds * per_second / max(passes, 1))  # 15 % for perturbing and preprocessing the crops
    return int(min(max(size, MIN_ROBUSTNESS_SIZE), MAX_ROBUSTNESS_SIZE))


def build_report(models, data, out, runs=None, split: str = "PrivateTest", subset: int = 0,
                 robustness_size: int | None = None, robustness_seconds: float = ROBUSTNESS_SECONDS,
                 perturbations=None, preprocess=DEFAULT_PREPROCESS,
                 backend: str = "onnx", threads=None, seed: int = 0, clean: bool = False, progress: bool = True,
                 command: str = "", skip_bad_rows: bool = False) -> dict:
    """Evaluate every model and write OUT/report.html, OUT/report.md (+ figures/) and OUT/report.json."""
    models = list(models)
    if not models:
        raise FerkitError("give at least one --model")
    runs = list(runs or [])
    if len(runs) > len(models):
        raise FerkitError(f"{len(runs)} --run folders for {len(models)} models; give at most one per model")
    for run in runs:
        if run and not Path(run).is_dir():
            raise FerkitError(f"{run}: no such run folder")
    if split == "PublicTest":
        raise FerkitError("the report's split is where the temperature is judged; PublicTest is where it is "
                          "fitted: use PrivateTest (or Training)")
    preprocess = tuple(preprocess)
    plan(perturbations, preprocess)  # validates the names before any work
    started = time.time()
    passes = len(plan(perturbations, preprocess))
    bar = _Progress(total=len(models) * (passes + 3), enabled=progress)
    results, cache = [], {}
    try:
        if robustness_size is None and len(models) > 1:
            # every model's curves on the same images: the size the slowest model can afford
            from ferkit.classifier.torch_classifier import TorchClassifier

            bar.stage("measuring speed")
            sizes = []
            for model in models:
                classifier = TorchClassifier.load(model)
                faces = _split(cache, data, split, classifier.labels, clean, subset, seed, skip_bad_rows)
                sizes.append(automatic_size(_runner(classifier, backend, threads), faces.images, passes,
                                            robustness_seconds))
            robustness_size = min(sizes)
        for model, name, run in zip(models, _display_names(models), runs + [None] * (len(models) - len(runs))):
            results.append(evaluate_model(name, model, data, split, bar, run=run, subset=subset,
                                          robustness_size=robustness_size, robustness_seconds=robustness_seconds,
                                          perturbations=perturbations,
                                          preprocess=preprocess, backend=backend, threads=threads, seed=seed,
                                          clean=clean, data_cache=cache, skip_bad_rows=skip_bad_rows))
        bar.stage("writing report")
        doc = report_page(results, data=data, split=split, perturbations=perturbations, preprocess=preprocess,
                     seconds=time.time() - started, command=command)
        faces = cache[(tuple(results[0].labels), split)]
        sample = faces.images[stratified_sample(faces.labels, results[0].robustness_count, seed)]
        doc.figure("perturbations", perturbation_examples(sample[len(sample) // 2], perturbations, seed),
                   "Each row is one perturbation, left to right its levels.")
    finally:
        bar.close()
    out = Path(out)
    html_path, md_path = doc.write(out)
    summary = {
        "data": str(data), "split": split, "seconds": round(time.time() - started, 1),
        "models": [{"name": r.name, "checkpoint": r.source, "arch": r.arch, "parameters": r.parameters,
                    "tta": r.tta, "stored_temperature": r.stored_temperature, "metrics": r.metrics,
                    "most_confused": r.confused, "calibration": r.calibration, "robustness_images": r.robustness_count,
                    "robustness": {o: {n: {"levels": list(PERTURBATIONS[n].levels), "accuracy": a}
                                       for n, a in curves.items()} for o, curves in r.robustness.items()},
                    "run": r.run} for r in results]}
    json_path = out / "report.json"
    json_path.write_text(json.dumps(summary, indent=2, default=float))
    return {"html": html_path, "markdown": md_path, "json": json_path, "seconds": summary["seconds"],
            "models": results}
