"""`ferkit soup`: nets of one architecture averaged into one net (a "model soup"), chosen on PublicTest.

Unlike an ensemble, a soup costs what one member costs at run time, so it keeps a model's speed. Averaging only
works for nets that share a basin, e.g. warm restarts of one checkpoint. The greedy recipe (Wortsman et al.,
2022): rank the members by PublicTest accuracy, start from the best, and keep each next one only if the running
average does not lose PublicTest accuracy. With `bn_recompute` each candidate's batch-norm statistics are also
re-estimated on clean Training faces (the mean of the members' statistics is not the statistics of the mean
net), and the better of the two is chosen on PublicTest too. PrivateTest is never read here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ferkit.classifier.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, slim
from ferkit.classifier.shipped import resolve_checkpoint
from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.errors import FerkitError
from ferkit.evaluate.scoring import evaluate_classifier, evaluation_data
from ferkit.train.averaging import average_states, recompute_batchnorm


def make_soup(members: list[str], data, out, bn_recompute: bool = False, uniform: bool = False, log=print,
              skip_bad_rows: bool = False) -> dict:
    """Write the soup's checkpoint to `out`; returns {"members", "accuracy", "bn_recomputed"} (PublicTest)."""
    if not members:
        raise FerkitError("a soup needs at least one member")
    paths = [resolve_checkpoint(m) for m in members]
    checkpoints = [load_checkpoint(p) for p in paths]
    base = checkpoints[0].info
    for name, checkpoint in zip(members, checkpoints):
        info = checkpoint.info
        if (info.arch, info.arch_kwargs, info.labels) != (base.arch, base.arch_kwargs, base.labels) or info.members:
            raise FerkitError(f"{name}: not the architecture and labels of {members[0]}; cannot average")
    val = evaluation_data(data, "PublicTest", base.labels, skip_bad_rows=skip_bad_rows)
    train = evaluation_data(data, "Training", base.labels, skip_bad_rows=skip_bad_rows) if bn_recompute else None

    def score(weights: dict, recompute: bool) -> tuple[float, dict]:
        classifier = TorchClassifier(Checkpoint(replace(base, temperature=1.0), weights))
        if recompute:
            recompute_batchnorm(classifier.model, train.images)
            weights = {k: v.detach().clone() for k, v in classifier.model.state_dict().items()}
        return evaluate_classifier(classifier, val)["accuracy"], weights

    def best_of(chosen: list) -> tuple[float, dict, bool]:
        mean = average_states([c.model_state for c in chosen])
        options = [(*score(mean, False), False)] + ([(*score(mean, True), True)] if bn_recompute else [])
        return max(options, key=lambda o: o[0])

    singles = sorted(((score(c.model_state, False)[0], name, c) for name, c in zip(members, checkpoints)),
                     key=lambda row: -row[0])
    for accuracy, name, _ in singles:
        log(f"{name}: PublicTest {accuracy:.4f}")
    if uniform:
        chosen, names = [c for _, _, c in singles], [n for _, n, _ in singles]
        best_acc, best_weights, recomputed = best_of(chosen)
    else:
        best_acc, name, first = singles[0]
        chosen, names, best_weights, recomputed = [first], [name], first.model_state, False
        for _, name, checkpoint in singles[1:]:
            trial_acc, trial_weights, trial_recomputed = best_of(chosen + [checkpoint])
            kept = trial_acc >= best_acc
            log(f"adding {name}: PublicTest {trial_acc:.4f}{' (BN re-estimated)' if trial_recomputed else ''}"
                f" -> {'kept' if kept else 'dropped'}")
            if kept:
                chosen.append(checkpoint)
                names.append(name)
                best_acc, best_weights, recomputed = trial_acc, trial_weights, trial_recomputed
    # the first member's description (config, labels, preprocessing, TTA), without its calibration
    first = slim(checkpoints[0])
    info = replace(first.info, temperature=1.0, calibration={}, metrics={**base.metrics, "val_acc": best_acc},
                   origin={"soup": {"members": [str(resolve_checkpoint(n)) for n in names],
                                    "bn_recomputed": recomputed}})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, Checkpoint(info, best_weights))
    return {"members": names, "accuracy": best_acc, "bn_recomputed": recomputed}
