"""INT8 graphs for recognition: ONNX Runtime static quantisation (QDQ format, per-channel int8 weights in 7-bit
range, uint8 activations) of a classifier and of the RetinaFace detector, calibrated on real faces only.

- A classifier is calibrated on Training faces of FER2013 (never a test split), each seen as the model sees it at
  recognition time (its own TTA views: plain and mirrored).
- The detector is calibrated on frames of real faces: Training faces of FER2013 enlarged and placed on real photos
  without faces (scikit-image's), at the sizes a camera gives, beside scikit-image's portraits.

The INT8 graph keeps the fp32 graph's metadata (labels, TTA, preprocessing, temperature, the checkpoint's sha256)
and adds `precision: int8`, so it loads like any ferkit .onnx file; `ferkit.classifier.onnx_classifier` finds
`NAME.int8.onnx` beside a checkpoint `NAME.pt` when recognition asks for int8.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ferkit.classifier.onnx_classifier import OnnxClassifier, int8_path_for, onnx_for_checkpoint
from ferkit.classifier.shipped import resolve_checkpoint
from ferkit.classifier.tta import check_tta, tta_views_numpy
from ferkit.errors import FerkitError
from ferkit.files import file_sha256, write_atomically
from ferkit.vision.crop import normalise_numpy

CALIBRATION_FACES = 1024  # Training faces for a classifier (the result moved by < 0.1 point from 512 to 2048)
CALIBRATION_FRAMES = 48   # frames for the detector


def _quantize(source: Path, out: Path, batches: list[dict], metadata: dict) -> Path:
    """Static QDQ quantisation of `source` on `batches` (input name → array), written atomically to `out`."""
    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="ferkit-quantize-") as folder:
        prepared, quantized = Path(folder) / "prepared.onnx", Path(folder) / "int8.onnx"
        model = onnx.load(str(source))
        if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
            # per-channel DequantizeLinear (its `axis`) exists from opset 13 on; the detector's graph is opset 11
            model = onnx.version_converter.convert_version(model, 13)
            source = Path(folder) / "opset13.onnx"
            onnx.save(model, str(source))
        quant_pre_process(str(source), str(prepared))  # shape inference and fusions the quantiser relies on
        # reduce_range: 7-bit weights. On x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) ONNX Runtime's
        # u8×s8 kernels add pairs of products in int16, which saturates with 8-bit weights: `default` fell from
        # 0.7127 to 0.6239 on PublicTest on a Zen 3 EPYC with full-range weights, and kept 0.7111 with 7-bit ones.
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        proto = onnx.load(str(quantized))
        del proto.metadata_props[:]
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        proto.producer_name = "ferkit"
        return write_atomically(out, proto.SerializeToString())


def _graph_metadata(path: Path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def calibration_faces(data, count: int = CALIBRATION_FACES, seed: int = 0) -> np.ndarray:
    """count Training faces of a FER2013 csv, a fixed random sample (no test split is ever read)."""
    from ferkit.data import load_dataset

    faces = load_dataset(data)
    if faces.usage is not None:
        faces = faces.split("Training")
    if len(faces) == 0:
        raise FerkitError(f"{data}: no Training faces to calibrate on")
    pick = np.random.default_rng(seed).permutation(len(faces))[:count]
    return faces.images[np.sort(pick)]


def quantize_classifier(model, data, out=None, count: int = CALIBRATION_FACES) -> Path:
    """The INT8 graph of a classifier (shipped name, run folder, checkpoint), calibrated on Training faces of
    `data`; written beside the checkpoint as NAME.int8.onnx unless `out` says where."""
    checkpoint = resolve_checkpoint(model)
    source = onnx_for_checkpoint(checkpoint)
    fp32 = OnnxClassifier(source)
    crops = calibration_faces(data, count)
    views = check_tta(fp32.tta) or []
    batches = []
    for start in range(0, len(crops), 64):
        x = normalise_numpy(crops[start:start + 64])
        batches += [{fp32.input_name: np.ascontiguousarray(v)} for v in tta_views_numpy(x, views)]
    metadata = {**_graph_metadata(source), "precision": "int8", "calibration": json.dumps(
        {"data": Path(str(data)).name, "split": "Training", "faces": len(crops), "views": views or ["none"]})}
    return _quantize(source, Path(out) if out else int8_path_for(checkpoint), batches, metadata)


def detector_calibration_frames(data, count: int = CALIBRATION_FRAMES, seed: int = 0) -> list[np.ndarray]:
    """Real frames for the detector: Training faces enlarged to 40–200 px and placed on real photos without
    faces, and scikit-image's portraits (the astronaut, the cameraman)."""
    from skimage import data as photos

    backgrounds = [cv2.cvtColor(photos.coffee(), cv2.COLOR_RGB2BGR), cv2.cvtColor(photos.rocket(), cv2.COLOR_RGB2BGR),
                   cv2.cvtColor(photos.brick(), cv2.COLOR_GRAY2BGR), cv2.cvtColor(photos.chelsea(), cv2.COLOR_RGB2BGR)]
    portraits = [cv2.cvtColor(photos.astronaut(), cv2.COLOR_RGB2BGR), cv2.cvtColor(photos.camera(), cv2.COLOR_GRAY2BGR)]
    faces = calibration_faces(data, count * 4, seed)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count - len(portraits)):
        frame = cv2.resize(backgrounds[i % len(backgrounds)], (640, 480), interpolation=cv2.INTER_AREA)
        for face in faces[4 * i:4 * i + rng.integers(1, 5)]:
            side = int(rng.integers(40, 200))
            x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
            frame[y:y + side, x:x + side] = cv2.cvtColor(cv2.resize(face, (side, side)), cv2.COLOR_GRAY2BGR)
        frames.append(frame)
    return frames + portraits


def quantize_detector(data, out=None, count: int = CALIBRATION_FRAMES) -> Path:
    """The INT8 graph of the RetinaFace detector, calibrated on real frames at the scale detection uses."""
    from ferkit.vision.detect import DETECTOR_WEIGHTS, RetinaFaceDetector

    source = DETECTOR_WEIGHTS / "retinaface_mnet025.onnx"
    detector = RetinaFaceDetector(model_path=source)
    batches = []
    for frame in detector_calibration_frames(data, count):
        small = detector.prepare(frame)[0]
        batches.append({"input": small})
    metadata = {"precision": "int8", "fp32_sha256": file_sha256(source), "calibration": json.dumps(
        {"data": Path(str(data)).name, "split": "Training", "frames": len(batches)})}
    return _quantize(source, Path(out) if out else source.with_name("retinaface_mnet025.int8.onnx"), batches,
                     metadata)
