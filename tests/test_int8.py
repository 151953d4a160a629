"""INT8 graphs: every shipped model and the detector ship one, made from the very checkpoint beside it; they give
the fp32 graph's answers on real faces; `ferkit quantize` makes one for any checkpoint, calibrated on Training faces
only; precision is chosen explicitly or by `auto`, and asking for an INT8 graph that does not exist says how to
make one. (Their PrivateTest accuracy is guarded in tests/test_shipped_accuracy.py.)"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import skimage_crops

from ferkit.classifier.onnx_classifier import OnnxClassifier, int8_for_checkpoint
from ferkit.classifier.shipped import shipped_models
from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.files import file_sha256
from ferkit.sessions import uses_int8_by_default
from ferkit.testing.media import (
    astronaut,
    camera,
    iou,
    make_checkpoint,
    multi_face_frame,
)
from ferkit.vision.detect import DETECTOR_WEIGHTS, RetinaFaceDetector


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_each_shipped_model_ships_an_int8_graph_of_its_own_checkpoint(name):
    path = int8_for_checkpoint(name)
    assert path is not None, f"no {name}.int8.onnx made from {name}.pt: `ferkit quantize --model {name} ...`"
    int8 = OnnxClassifier.load(name, precision="int8")
    fp32 = OnnxClassifier.load(name, precision="fp32")
    assert int8.precision == "int8" and fp32.precision == "fp32" and int8.labels == fp32.labels
    assert int8.metadata["checkpoint_sha256"] == file_sha256(shipped_models()[name])
    assert json.loads(int8.metadata["calibration"])["split"] == "Training"
    assert path.stat().st_size < 0.4 * (path.with_name(f"{name}.onnx")).stat().st_size
    crops = skimage_crops(16)
    p8, p32 = int8.predict_proba(crops), fp32.predict_proba(crops)
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.85 and np.abs(p8 - p32).mean() < 0.05
    # the head (logits, temperature, softmax) stays float: probabilities on no 1/255 grid, no Q/DQ after the logits
    graph = onnx.load(str(path)).graph
    assert [node.op_type for node in graph.node[-3:]] == ["Gemm", "Div", "Softmax"]
    plain = OnnxClassifier.load(name, precision="int8").predict_proba(crops, tta=[])
    assert not np.allclose(plain * 255, np.round(plain * 255), atol=1e-3)


def test_the_int8_detector_finds_the_faces_the_fp32_one_finds():
    int8, fp32 = RetinaFaceDetector(precision="int8"), RetinaFaceDetector(precision="fp32")
    assert int8.precision == "int8" and (DETECTOR_WEIGHTS / "retinaface_mnet025.int8.onnx").is_file()
    for image in (astronaut(), camera(), multi_face_frame()[0]):
        found, wanted = int8.detect(image), fp32.detect(image)
        assert len(found) == len(wanted) >= 1
        for face in wanted:
            assert max(iou(face.box, f.box) for f in found) > 0.85


def test_auto_precision_takes_int8_where_it_is_the_faster():
    auto = OnnxClassifier.load("default")
    assert auto.precision == ("int8" if uses_int8_by_default() else "fp32")
    assert RetinaFaceDetector().precision == "fp32"  # its INT8 graph is not faster and finds fewer faces


def test_quantize_makes_an_int8_graph_beside_any_checkpoint(tmp_path, fer_rows, write_fer_csv, capsys):
    csv = write_fer_csv(tmp_path / "fer2013.csv", fer_rows)
    (tmp_path / "run").mkdir()
    checkpoint = make_checkpoint(tmp_path / "run" / "best.pt", "mini_xception", tta=("flip",))
    with pytest.raises(FerkitError, match="ferkit quantize"):
        OnnxClassifier.load(tmp_path / "run", precision="int8")
    assert OnnxClassifier.load(tmp_path / "run").precision == "fp32"  # auto: no INT8 graph, so fp32
    assert main(["quantize", "--model", str(tmp_path / "run"), "--data", str(csv)]) == 0
    assert (tmp_path / "run" / "best.int8.onnx").is_file() and "wrote" in capsys.readouterr().out
    int8 = OnnxClassifier.load(checkpoint, precision="int8")
    assert int8.precision == "int8" and int8.tta == ["flip"]
    assert json.loads(int8.metadata["calibration"]) == {"data": "fer2013.csv", "split": "Training", "faces": 10,
                                                         "views": ["flip"]}
    assert main(["evaluate", "--model", str(checkpoint), "--data", str(csv), "--split", "PublicTest",
                 "--backend", "onnx", "--precision", "int8"]) == 0
    assert "ONNX Runtime int8" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(checkpoint), "--data", str(csv), "--precision", "int8"]) == 2
    assert "use the onnx backend" in capsys.readouterr().err


def test_an_unknown_precision_or_device_is_refused():
    with pytest.raises(FerkitError, match="unknown precision"):
        OnnxClassifier.load("fast", precision="int4")
    with pytest.raises(FerkitError, match="unknown device"):
        OnnxClassifier.load("fast", device="tpu")


def test_a_device_whose_provider_is_missing_falls_back_to_the_cpu_with_one_line(monkeypatch, capfd):
    from ferkit import sessions

    monkeypatch.setattr(sessions, "_warned", set())
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("this machine has CUDA: nothing to fall back from")
    for _ in range(2):
        classifier = OnnxClassifier.load("fast", device="cuda")
        assert classifier.session.get_providers() == ["CPUExecutionProvider"]
    err = capfd.readouterr().err
    assert err.count("no cuda execution provider here (install onnxruntime-gpu); running on the CPU") == 1
