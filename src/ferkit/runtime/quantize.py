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


# Ops that may sit between a classifier's last layer and its output (temperature, softmax, reshapes).
HEAD_OPS = {"Softmax", "Div", "Mul", "Add", "Sub", "Identity", "Reshape", "Flatten", "Cast"}


def float_head(model) -> list[str]:
    """The nodes between a classifier's last weighted layer and the graph's outputs (the temperature and the
    softmax), to keep in float: quantised, the probabilities came out in steps of 1/255 (a score of 0.9961 or 1.0,
    nothing between; 716 distinct values over PublicTest where fp32 gives 24,929)."""
    producers = {output: node for node in model.graph.node for output in node.output}
    head, frontier = [], [o.name for o in model.graph.output]
    while frontier:
        node = producers.get(frontier.pop())
        if node is None or node.name in head or node.op_type not in HEAD_OPS:
            continue
        head.append(node.name)
        frontier += [name for name in node.input if name in producers]
    return head


def _unquantise_head(model, head: list[str]) -> None:
    """Removes the QuantizeLinear → DequantizeLinear pairs that feed only the head, so that the last layer's output
    (the logits) reaches it in float; the layer itself keeps its int8 weights and input."""
    nodes = model.graph.node
    producers = {output: node for node in nodes for output in node.output}
    readers: dict[str, list] = {}
    for node in nodes:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    drop = set()
    for node in (n for n in nodes if n.name in head):
        for i, tensor in enumerate(node.input):
            dq = producers.get(tensor)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is None or q.op_type != "QuantizeLinear" or len(readers[q.output[0]]) != 1:
                continue
            if all(reader.name in head for reader in readers[dq.output[0]]):
                for reader in readers[dq.output[0]]:
                    reader.input[:] = [q.input[0] if name == dq.output[0] else name for name in reader.input]
                drop |= {id(dq), id(q)}
    keep = [node for node in nodes if id(node) not in drop]
    del nodes[:]
    nodes.extend(keep)
    used = {tensor for node in keep for tensor in node.input}
    initializers = [tensor for tensor in model.graph.initializer if tensor.name in used]  # the pairs' scales
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)


def _quantize(source: Path, out: Path, batches: list[dict], metadata: dict, keep_head: bool = False) -> Path:
    """Static QDQ quantisation of `source` on `batches` (input name → array), written atomically to `out`;
    keep_head: the last layer's output and everything after it stay float (float_head)."""
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
        head = float_head(onnx.load(str(prepared))) if keep_head else []
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=head)
        proto = onnx.load(str(quantized))
        if keep_head:
            _unquantise_head(proto, head)
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
    return _quantize(source, Path(out) if out else int8_path_for(checkpoint), batches, metadata, keep_head=True)


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
