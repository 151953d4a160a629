"""Export a trained classifier to ONNX, verified against PyTorch.

The graph takes the normalised batch (float32 N×1×48×48, as ferkit.vision.crop.normalise makes it; N is a
dynamic axis) and returns ``probabilities`` (N×classes, softmax of the logits divided by the checkpoint's
``temperature``, 1 unless `ferkit calibrate` fitted one, so ONNX and PyTorch give the same calibrated numbers).
The labels, the test-time augmentation, the
preprocessing spec, the architecture and the source checkpoint's sha256 travel in the model's metadata_props,
so an .onnx file is usable on its own.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import file_sha256

TOLERANCE = 1e-4
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


def _verification_batch(count: int = 16) -> np.ndarray:
    """Real face crops (scikit-image's photos, cut the way recognition cuts them) plus noise and flat crops."""
    import cv2

    crops = []
    try:
        from skimage import data

        from ferkit.vision.crop import face_crop

        astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
        camera = data.camera()
        for i in range(count // 2):
            d = 4 * i
            crops.append(face_crop(astronaut[30 + d:190 + d, 170 - d:330 - d]))
            crops.append(face_crop(camera[80 + d:190 + d, 160 - d:270 - d]))
    except Exception:  # noqa: BLE001 - scikit-image missing or its data unreadable: noise still verifies
        pass
    rng = np.random.default_rng(0)
    while len(crops) < count:
        crops.append(rng.integers(0, 256, (48, 48), dtype=np.uint8))
    crops[-1] = np.full((48, 48), 128, np.uint8)
    return np.stack(crops[:count])


def export_onnx(checkpoint_or_name, out_path: str | Path, opset: int = OPSET, verify: bool = True,
                tolerance: float = TOLERANCE) -> Path:
    """Write the model as ONNX to out_path (atomically) and return the path. Raises FerkitError when ONNX
    Runtime's outputs differ from PyTorch's by more than tolerance."""
    import torch

    from ferkit.classifier.shipped import resolve_checkpoint
    from ferkit.classifier.torch_classifier import TorchClassifier
    from ferkit.version import __version__
    from ferkit.vision.crop import PREPROCESS, normalise

    if isinstance(checkpoint_or_name, TorchClassifier):
        classifier = checkpoint_or_name
        source = Path(classifier.source) if classifier.source else None
    else:
        source = resolve_checkpoint(checkpoint_or_name)
        classifier = TorchClassifier.load(source)
    model = classifier.model.eval()

    temperature = float(getattr(classifier, "temperature", 1.0))

    class WithSoftmax(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            logits = self.inner(x)
            return torch.softmax(logits if temperature == 1.0 else logits / temperature, dim=1)

    wrapped = WithSoftmax(model).eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    example = normalise(_verification_batch(2))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about shape checks that are constant for 48×48 input
            try:
                torch.onnx.export(wrapped, (example,), str(tmp), input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                                  opset_version=opset, do_constant_folding=True, dynamo=False)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - the exporter raises many types for a graph it cannot write
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise FerkitError(f"cannot export {classifier.arch} to ONNX opset {opset}: {first}") from None
        import onnx

        proto = onnx.load(str(tmp))
        metadata = {
            "ferkit_version": __version__,
            "labels": json.dumps(list(classifier.labels)),
            "tta": json.dumps(list(classifier.tta)),
            "preprocess": json.dumps(PREPROCESS),
            "arch": classifier.arch,
            "temperature": repr(temperature),
            "checkpoint_sha256": file_sha256(source) if source and source.is_file() else "",
            "input": "float32 N×1×48×48: gray crops from ferkit.vision.crop, (x/255 - mean) / std",
            "output": "probabilities N×classes (softmax of logits / temperature), in the order of `labels`",
        }
        del proto.metadata_props[:]
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "ferkit"
        onnx.save(proto, str(tmp))
        if verify:
            verify_onnx(wrapped, tmp, tolerance)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def verify_onnx(torch_model, onnx_path: str | Path, tolerance: float = TOLERANCE) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime on real crops at batch 1 and 16."""
    import onnxruntime as ort
    import torch

    from ferkit.vision.crop import normalise

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    crops = _verification_batch(16)
    for batch in (crops[:1], crops):
        x = normalise(batch)
        with torch.no_grad():
            expected = torch_model(x).numpy()
        got = session.run(None, {INPUT_NAME: x.numpy()})[0]
        if got.shape != expected.shape:
            raise FerkitError(f"ONNX export gives shape {got.shape}, PyTorch {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= tolerance:
        raise FerkitError(f"ONNX export differs from PyTorch by {worst:.2e} (tolerance {tolerance:.0e})")
    return worst
