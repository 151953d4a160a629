"""Average the weights of nets of one architecture into one net (a "model soup"), chosen on PublicTest.

    python tools/soup.py runs/t130_vgg40pb runs/r115_kd runs/r115_mix --data ../shared/data/fer2013/fer2013.csv.gz \
        --out runs/soup.pt

Unlike an ensemble, a soup costs what one member costs at run time, so it keeps `default`'s speed. Averaging
only works for nets that share a basin, e.g. warm restarts of one checkpoint. The greedy recipe (Wortsman et al.,
2022): rank the members by PublicTest accuracy, start from the best, and keep each next one only if the running
average does not lose PublicTest accuracy. With `--bn-recompute` each candidate's batch-norm statistics are
re-estimated on clean Training faces, since the mean of the members' statistics is not the statistics of the
mean net; the better of the two is chosen on PublicTest too. PrivateTest is never read here.
"""

from __future__ import annotations

import argparse

from ferkit.errors import FerkitError
from ferkit.evaluate.evaluate import evaluate_classifier, evaluation_data
from ferkit.models.soup import average_states, recompute_batchnorm
from ferkit.runtime.models import TorchClassifier, resolve_checkpoint
from ferkit.train.checkpoint import load_checkpoint, save_checkpoint

KEEP = ("arch", "arch_kwargs", "labels", "preprocess", "config", "parameters", "tta", "metrics", "epoch",
        "elapsed_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("members", nargs="+", help="shipped names, run folders or checkpoints (one architecture)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="where to write the soup's checkpoint")
    parser.add_argument("--bn-recompute", action="store_true",
                        help="also try each soup with BN statistics re-estimated on clean Training faces")
    parser.add_argument("--uniform", action="store_true", help="average all members instead of the greedy choice")
    args = parser.parse_args()
    try:
        run(args)
    except FerkitError as exc:
        raise SystemExit(f"error: {exc}") from None


def run(args) -> None:
    paths = [resolve_checkpoint(m) for m in args.members]
    states = [load_checkpoint(p) for p in paths]
    base = states[0]
    for name, state in zip(args.members, states):
        if state["arch"] != base["arch"] or state.get("arch_kwargs") != base.get("arch_kwargs") \
                or state.get("labels") != base.get("labels"):
            raise FerkitError(f"{name}: not the architecture and labels of {args.members[0]}; cannot average")
    val = evaluation_data(args.data, "PublicTest", base["labels"])
    train = evaluation_data(args.data, "Training", base["labels"]) if args.bn_recompute else None

    def score(weights: dict, recompute: bool) -> tuple[float, dict]:
        state = {**base, "model_state": weights, "temperature": 1.0}
        classifier = TorchClassifier(state)
        if recompute:
            recompute_batchnorm(classifier.model, train.images)
            weights = {k: v.detach().clone() for k, v in classifier.model.state_dict().items()}
        return evaluate_classifier(classifier, val)["accuracy"], weights

    singles = [(score(s["model_state"], False)[0], name, s) for name, s in zip(args.members, states)]
    singles.sort(key=lambda row: -row[0])
    print("| member | PublicTest |\n| --- | --- |")
    for acc, name, _ in singles:
        print(f"| {name} | {acc:.4f} |")

    def best_of(chosen: list) -> tuple[float, dict, bool]:
        mean = average_states([s["model_state"] for s in chosen])
        options = [(*score(mean, False), False)]
        if args.bn_recompute:
            options.append((*score(mean, True), True))
        return max(options, key=lambda o: o[0])

    if args.uniform:
        chosen = [s for _, _, s in singles]
        names = [n for _, n, _ in singles]
        best_acc, best_weights, recomputed = best_of(chosen)
    else:
        best_acc, name, first = singles[0]
        chosen, names = [first], [name]
        best_weights, recomputed = first["model_state"], False
        for acc, name, state in singles[1:]:
            trial_acc, trial_weights, trial_recomputed = best_of(chosen + [state])
            kept = trial_acc >= best_acc
            print(f"adding {name}: PublicTest {trial_acc:.4f}{' (BN re-estimated)' if trial_recomputed else ''}"
                  f" -> {'kept' if kept else 'dropped'}")
            if kept:
                chosen.append(state)
                names.append(name)
                best_acc, best_weights, recomputed = trial_acc, trial_weights, trial_recomputed
    # the first member's metadata (config, labels, preprocessing, TTA) without its optimiser state or calibration
    soup = {key: value for key, value in base.items() if key in KEEP}
    soup.update(model_state=best_weights,
                soup={"members": [str(resolve_checkpoint(n)) for n in names], "bn_recomputed": recomputed},
                metrics={**base.get("metrics", {}), "val_acc": best_acc})
    save_checkpoint(args.out, soup)
    print(f"soup of {len(names)} ({' + '.join(names)}{', BN re-estimated' if recomputed else ''}): "
          f"PublicTest {best_acc:.4f} -> {args.out}")


if __name__ == "__main__":
    main()
