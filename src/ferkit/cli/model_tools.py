"""Subcommands about trained models: `ferkit models`, `ferkit export` (ONNX), `ferkit quantize` (INT8) and
`ferkit ensemble`."""

from __future__ import annotations

from pathlib import Path

from ferkit.cli.arguments import tta_argument
from ferkit.errors import FerkitError


def add_models(sub) -> None:
    p = sub.add_parser("models", help="list registered architectures and shipped models (PrivateTest accuracy)")
    p.set_defaults(func=cmd_models)


def shipped_results() -> dict:
    """name → the PrivateTest figures docs/results.md records for a shipped model (weights/results.json)."""
    import json

    from ferkit.classifier.shipped import WEIGHTS_DIR

    try:
        return json.loads((WEIGHTS_DIR / "results.json").read_text())["models"]
    except (OSError, ValueError, KeyError):
        return {}


def cmd_models(args) -> int:
    from ferkit.classifier.checkpoint import load_checkpoint
    from ferkit.classifier.shipped import shipped_models
    from ferkit.models import count_parameters, create_model, list_models

    print(f"{'architecture':<16}{'parameters':>14}{'with BN stats':>16}")
    for name in list_models():
        model = create_model(name)
        print(f"{name:<16}{count_parameters(model):>14,}{count_parameters(model, keras_style=True):>16,}")
    print()
    results = shipped_results()
    print(f"{'shipped model':<16}{'architecture':<16}{'parameters':>12}  {'labels':<8}{'TTA':<12}PrivateTest accuracy")
    for name, path in shipped_models().items():
        info = load_checkpoint(path).info
        figures = results.get(name, {})
        accuracy = f"{figures['accuracy']:.4f}" if "accuracy" in figures else "-"
        if "strict" in figures:
            accuracy += f" ({figures['strict']:.4f} strict)"
        print(f"{name:<16}{info.arch:<16}{info.parameters:>12,}  {len(info.labels):<8}"
              f"{','.join(info.tta) or '-':<12}{accuracy}")
    print("PrivateTest: the held-out FER2013 split, each model with its own TTA (docs/results.md); FER+ models on "
          "FER+ labels, strict: the FER+ authors' protocol")
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (verified against PyTorch)",
                       description="Write the model as ONNX: float32 N×1×48×48 normalised crops in, probabilities "
                                   "out; labels, TTA and preprocessing in the metadata. Fails if ONNX Runtime's "
                                   "outputs differ from PyTorch's by more than 1e-4.")
    p.add_argument("--model", default="default", help="shipped model name, run folder or checkpoint file")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13 to 20 (default 17)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ferkit.classifier.export import export_onnx

    if not 13 <= args.opset <= 20:
        raise FerkitError(f"--opset {args.opset}: ferkit exports opsets 13 to 20 (ONNX Runtime runs them all)")
    path = export_onnx(args.model, args.out, opset=args.opset)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); outputs match PyTorch within 1e-4")
    return 0


def add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="combine trained models into one (mean of their probabilities)",
                       description="Write one checkpoint that averages the members' probabilities, each member at "
                                   "its own calibration temperature. It works wherever a checkpoint does: evaluate, "
                                   "predict, calibrate, export, serve, and as a distillation teacher.")
    p.add_argument("members", nargs="+", help="shipped model names, run folders or checkpoint files (two or more)")
    p.add_argument("--out", required=True, help="the checkpoint to write")
    p.add_argument("--tta", type=tta_argument, help="the ensemble's TTA (default: the members' own, if they agree)")
    p.set_defaults(func=cmd_ensemble)


def cmd_ensemble(args) -> int:
    from ferkit.classifier.ensemble_checkpoint import save_ensemble

    info = save_ensemble(args.members, args.out, tta=args.tta).info
    out = Path(args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(info.members)} members, "
          f"{info.parameters:,} parameters, TTA {','.join(info.tta) or 'none'}")
    return 0


def add_quantize(sub) -> None:
    p = sub.add_parser("quantize", help="an INT8 graph of a model (or of the face detector) for fast recognition",
                       description="ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8 "
                                   "activations), calibrated on Training faces of --data only (never a test split). "
                                   "A model's INT8 graph is written beside its checkpoint as NAME.int8.onnx, where "
                                   "recognition finds it (--precision int8, or auto where INT8 is the faster).")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="shipped model name, run folder or checkpoint")
    what.add_argument("--detector", choices=["retinaface"], help="the face detector instead of a classifier")
    p.add_argument("--data", required=True, help="FER2013 csv(.gz): its Training faces calibrate")
    p.add_argument("--out", help="where to write the .onnx (default: beside the checkpoint, or the detector's)")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> int:
    from ferkit.runtime.quantize import quantize_classifier, quantize_detector

    path = quantize_detector(args.data, args.out) if args.detector else quantize_classifier(args.model, args.data,
                                                                                            args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
