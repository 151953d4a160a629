"""The checkpoint format: typed, written by one atomic writer, slimmed by one function, and files of the first
format (v1, a flat dict: every model shipped before v2) still load, resume and build."""

from __future__ import annotations

import pytest
import torch

from ferkit.classifier.checkpoint import (
    FORMAT,
    V1_FORMAT,
    Checkpoint,
    ModelInfo,
    TrainingState,
    load_checkpoint,
    save_checkpoint,
    slim,
)
from ferkit.classifier.onnx_classifier import OnnxClassifier
from ferkit.classifier.protocol import Classifier
from ferkit.classifier.shipped import shipped_models
from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.errors import FerkitError
from ferkit.models import create_model
from ferkit.testing.media import make_checkpoint


def test_a_shipped_v1_checkpoint_loads_as_typed_info():
    raw = torch.load(shipped_models()["default"], map_location="cpu", weights_only=False)
    assert raw["format"] == V1_FORMAT  # the shipped files predate v2 on purpose: they prove old files load
    checkpoint = load_checkpoint(shipped_models()["default"])
    info = checkpoint.info
    assert info.arch == raw["arch"] == "vgg" and info.arch_kwargs == raw["arch_kwargs"]
    assert info.labels == tuple(raw["labels"]) and info.tta == raw["tta"] == ["flip"]
    assert info.temperature == raw["temperature"] and info.metrics == raw["metrics"]
    assert info.config == raw["config"] and checkpoint.training is None
    model = checkpoint.build_model()
    assert not model.training and sum(p.numel() for p in model.parameters()) == info.parameters


def test_a_v1_training_state_maps_onto_the_typed_one(tmp_path):
    torch.manual_seed(0)
    model = create_model("simple_cnn")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    v1 = {"format": V1_FORMAT, "arch": "simple_cnn", "arch_kwargs": {}, "labels": ["a"] * 7, "epoch": 3,
          "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(), "scheduler_state": {"x": 1},
          "history": [{"epoch": 1}], "best_val_acc": 0.5, "stale_epochs": 2, "elapsed_s": 12.5,
          "ema_state": {"model_state": model.state_dict(), "updates": 9}, "widened_from": "default"}
    torch.save(v1, tmp_path / "last.pt")
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint.info.epoch == 3 and checkpoint.info.elapsed_s == 12.5
    assert checkpoint.info.origin == {"widened_from": "default"}
    training = checkpoint.training
    assert training.history == [{"epoch": 1}] and training.best_val_acc == 0.5 and training.stale_epochs == 2
    assert training.scheduler == {"x": 1} and training.averages["ema"]["updates"] == 9


def test_save_and_load_round_trip_and_slim_drops_the_training_state(tmp_path):
    torch.manual_seed(1)
    model = create_model("simple_cnn")
    info = ModelInfo(arch="simple_cnn", tta=["flip"], temperature=0.8, metrics={"val_acc": 0.4}, parameters=5)
    training = TrainingState(optimizer={"state": {}}, scheduler={}, history=[{"epoch": 1}], averages={"swa": {}})
    path = save_checkpoint(tmp_path / "last.pt", Checkpoint(info, model.state_dict(), training))
    assert torch.load(path, weights_only=False)["format"] == FORMAT and not (tmp_path / "last.pt.tmp").exists()
    loaded = load_checkpoint(path)
    assert loaded.info == info and loaded.training == training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.model_state.items())
    small = slim(loaded, half=True)
    assert small.training is None and small.info == info
    assert all(v.dtype == torch.float16 for v in small.model_state.values() if v.is_floating_point())
    save_checkpoint(tmp_path / "small.pt", small)
    rebuilt = load_checkpoint(tmp_path / "small.pt").build_model()  # fp16 weights widen back to fp32
    assert next(rebuilt.parameters()).dtype == torch.float32


@pytest.mark.parametrize("content, message", [(b"not a checkpoint", "not a readable checkpoint"),
                                              ({"format": "something-else"}, "not a ferkit checkpoint"),
                                              ({"format": FORMAT, "model_state": {}}, "damaged")])
def test_files_that_are_not_checkpoints_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(FerkitError, match=message):
        load_checkpoint(path)


def test_both_back_ends_implement_the_classifier_protocol(tmp_path):
    path = make_checkpoint(tmp_path / "net.pt")
    for classifier in (TorchClassifier.load(path), OnnxClassifier.load(path)):
        assert isinstance(classifier, Classifier)
        assert classifier.labels == TorchClassifier.load(path).labels and classifier.source
