"""Real training steps on real FER2013 rows: the loss falls, a resumed run equals an uninterrupted one."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from ferkit.classifier.checkpoint import load_checkpoint
from ferkit.train.config import TrainConfig
from ferkit.train.engine import train


def _first_rows_per_split(fer2013_path, per_split: int) -> str:
    """The first `per_split` rows of each split of the real file, as csv text (read lazily: no full parse)."""
    wanted = {"Training": per_split, "PublicTest": per_split // 4, "PrivateTest": per_split // 4}
    lines = []
    with gzip.open(fer2013_path, "rt") as handle:
        header = handle.readline()
        for line in handle:
            usage = line.rstrip().rsplit(",", 1)[-1]
            if wanted.get(usage, 0) > 0:
                lines.append(line)
                wanted[usage] -= 1
            if not any(wanted.values()):
                break
    return header + "".join(lines)


@pytest.fixture(scope="module")
def small_csv(fer2013_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "small.csv"
    path.write_text(_first_rows_per_split(fer2013_path, 512))
    return path


def _config(data, **changes) -> TrainConfig:
    values = dict(model="mini_xception", data=str(data), epochs=2, batch_size=64, optimizer="adam", lr=3e-3,
                  schedule="cosine", subset=512, augment={"rotation": 10, "shift": 0.1, "hflip": True,
                                                          "erasing": 0.2, "mixup": 0.2},
                  label_smoothing=0.1, threads=1, progress=False, seed=3)
    values.update(changes)
    return TrainConfig.from_dict(values)


def _mean_loss(model, images, labels) -> float:
    from ferkit.vision.crop import normalise

    model.eval()
    with torch.no_grad():
        logits = model(normalise(images))
    return float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)))


def test_one_epoch_on_512_real_images_lowers_the_loss(small_csv, tmp_path):
    from ferkit.data import load_dataset
    from ferkit.models import create_model

    train_faces = load_dataset(small_csv).split("Training")
    config = _config(small_csv, epochs=1, augment={}, label_smoothing=0.0, optimizer="adam", lr=2e-3,
                     model="simple_cnn")
    torch.manual_seed(config.seed)
    untrained = create_model("simple_cnn", num_classes=7)  # the engine starts from this same seeded init
    before = _mean_loss(untrained, train_faces.images, train_faces.labels)
    train(config, tmp_path / "run", log=lambda *_: None)
    trained = load_checkpoint(tmp_path / "run" / "last.pt").build_model()
    after = _mean_loss(trained, train_faces.images, train_faces.labels)
    assert after < before - 0.02, (before, after)


def test_resumed_run_ends_with_the_same_weights(small_csv, tmp_path):
    config = _config(small_csv, epochs=3, subset=256)
    train(config, tmp_path / "straight", log=lambda *_: None)
    # "Kill" after one epoch (the checkpoint of epoch 1 is on disk), then resume to the end.
    train(_config(small_csv, epochs=3, subset=256), tmp_path / "resumed", log=lambda *_: None, stop_after_epochs=1)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt").info.epoch == 1
    train(None, tmp_path / "resumed", resume=True, log=lambda *_: None)

    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert resumed.info.epoch == straight.info.epoch == 3
    for name, tensor in straight.model_state.items():
        assert torch.equal(tensor, resumed.model_state[name]), name
    assert [r["val_acc"] for r in straight.training.history] == [r["val_acc"] for r in resumed.training.history]


def test_checkpoint_carries_config_labels_and_preprocessing(small_csv, tmp_path):
    config = _config(small_csv, epochs=1, subset=128, schedule="plateau", class_weights="balanced",
                     optimizer="sgd", lr=0.01)
    summary = train(config, tmp_path / "run", log=lambda *_: None)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert best.info.config["schedule"] == "plateau" and best.info.arch == "mini_xception"
    assert best.info.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert best.info.preprocess["size"] == 48 and best.info.preprocess["color"] == "gray"
    assert last.training.optimizer and last.training.scheduler and last.info.epoch == 1 and last.training.history
    assert best.training is None  # best.pt is a model; last.pt also holds what an exact resume needs
    assert 0.0 <= summary["best_val_acc"] <= 1.0
    for name in ("history.csv", "curves.png", "config.yaml"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,lr,train_loss,train_acc,val_loss,val_acc")


def test_early_stopping_stops_a_run_that_does_not_improve(small_csv, tmp_path):
    # lr 0 on a model without BN statistics never changes its accuracy, so patience 1 stops after epoch 2.
    config = _config(small_csv, model="simple_cnn", epochs=6, subset=128, lr=0.0, optimizer="sgd", schedule="none",
                     early_stopping=1, augment={})
    summary = train(config, tmp_path / "run", log=lambda *_: None)
    assert summary["epochs_run"] == 2


def test_config_overrides_reach_nested_values():
    config = TrainConfig().override(["augment.mixup=0.2", "model_kwargs.width=48", "epochs=3", "tta=[flip]"])
    assert config.augment == {"mixup": 0.2} and config.model_kwargs == {"width": 48}
    assert config.epochs == 3 and config.tta == ["flip"]
    with pytest.raises(Exception, match="unknown config key"):
        TrainConfig().override(["nope=1"])


def test_soft_label_targets_are_vote_distributions():
    from ferkit.data.faceset import FaceSet
    from ferkit.train.objective import soft_targets

    votes = np.array([[0.5, 0.5, 0, 0], [0, 0, 1, 0]], np.float32)
    faces = FaceSet(images=np.zeros((2, 48, 48), np.uint8), labels=np.array([0, 2]), label_names=("a", "b", "c", "d"),
                    votes=votes)
    assert torch.equal(soft_targets(faces, TrainConfig(labels="ferplus", soft_labels=True)), torch.from_numpy(votes))
    assert soft_targets(faces, TrainConfig()).tolist() == [[1, 0, 0, 0], [0, 0, 1, 0]]


def test_init_from_copies_the_backbone_and_leaves_a_new_label_sets_head_fresh(small_csv, tmp_path):
    from ferkit.models import create_model
    from ferkit.train.distillation import init_from_checkpoint

    train(_config(small_csv, epochs=1, subset=128), tmp_path / "fer", log=lambda *_: None)
    source = load_checkpoint(tmp_path / "fer" / "best.pt").model_state
    torch.manual_seed(0)
    ferplus = create_model("mini_xception", num_classes=8)
    message = init_from_checkpoint(ferplus, str(tmp_path / "fer"))
    own = ferplus.state_dict()
    head = [k for k in own if own[k].shape != source[k].shape]
    assert head and all(k in message for k in head)  # the 8-way classifier is new, and the log says so
    for name, tensor in own.items():
        if name not in head:
            assert torch.equal(tensor, source[name]), name


def test_distilling_a_teacher_changes_what_the_student_learns(small_csv, tmp_path):
    train(_config(small_csv, epochs=1, subset=128), tmp_path / "teacher", log=lambda *_: None)
    lines = []
    for name, changes in (("plain", {}), ("student", {"teachers": [str(tmp_path / "teacher")], "distill_weight": 0.9})):
        train(_config(small_csv, epochs=1, subset=128, model="simple_cnn", **changes), tmp_path / name,
              log=lines.append)
    plain = load_checkpoint(tmp_path / "plain" / "last.pt").model_state
    student = load_checkpoint(tmp_path / "student" / "last.pt")
    assert student.info.config["teachers"] == [str(tmp_path / "teacher")]
    assert any("distilling 1 teacher(s) offline" in line for line in lines)
    assert any(not torch.equal(plain[k], student.model_state[k]) for k in plain)  # same seed, other targets


def test_a_teacher_with_another_label_set_is_refused(small_csv, tmp_path):
    from ferkit.errors import FerkitError
    from ferkit.train.distillation import load_teachers

    train(_config(small_csv, epochs=1, subset=128), tmp_path / "teacher", log=lambda *_: None)
    with pytest.raises(FerkitError, match="predicts 7 classes, not 8"):  # a FER2013 teacher for a FER+ student
        load_teachers([str(tmp_path / "teacher")], 8, torch.device("cpu"), channels_last=False)


def test_a_time_budget_stops_the_run_mid_epoch_with_the_rate_decayed(small_csv, tmp_path):
    budget_min = 0.01  # 0.6 s: less than one epoch of 8 steps on one thread
    config = _config(small_csv, epochs=50, time_budget_min=budget_min, optimizer="sgd", lr=0.05, min_lr=1e-4,
                     warmup_epochs=0)
    summary = train(config, tmp_path / "run", log=lambda *_: None)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert summary["epochs_run"] < 50
    assert summary["elapsed_s"] >= budget_min * 60
    # Cosine ran on the clock: at the end the rate is at its floor (a 50-epoch step cosine would still be ~0.05).
    assert last.training.history[-1]["lr"] < 0.05 * 0.01
    assert (tmp_path / "run" / "best.pt").exists()


def test_onecycle_with_a_time_budget_is_refused(small_csv, tmp_path):
    from ferkit.errors import FerkitError

    with pytest.raises(FerkitError, match="onecycle"):
        train(_config(small_csv, schedule="onecycle", time_budget_min=1.0), tmp_path / "run", log=lambda *_: None)


def test_the_weight_average_follows_its_warmed_up_decay_and_copies_integer_buffers():
    from ferkit.models import create_model
    from ferkit.train.averaging import WeightAverage

    torch.manual_seed(0)
    model = create_model("mini_xception", num_classes=7)  # has BN: running stats and an integer batch counter
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.99)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(1) if tensor.is_floating_point() else tensor.fill_(5)
    average.update(model)
    decay = 1 / 10  # warm-up: update n uses (1 + n) / (10 + n) while that is under 0.99
    assert average.current_decay() == pytest.approx(2 / 11)
    for name, value in average.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, decay * start[name] + (1 - decay) * (start[name] + 1))
        else:
            assert int(value) == 5, name
    assert all(not p.requires_grad for p in average.model.parameters())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_with_ema_the_average_is_validated_saved_as_best_and_resumed_exactly(small_csv, tmp_path):
    config = dict(epochs=2, subset=256, ema=0.9, optimizer="sgd", lr=0.05)
    lines = []
    train(_config(small_csv, **config), tmp_path / "straight", log=lines.append)
    train(_config(small_csv, **config), tmp_path / "resumed", log=lambda *_: None, stop_after_epochs=1)
    after_one = load_checkpoint(tmp_path / "resumed" / "last.pt")
    best = load_checkpoint(tmp_path / "resumed" / "best.pt")  # epoch 1 is always the best so far
    assert best.info.epoch == 1
    for name, tensor in best.model_state.items():
        assert torch.equal(tensor, after_one.training.averages["ema"]["model_state"][name]), name
    assert any(not torch.equal(after_one.model_state[k], best.model_state[k])
               for k in best.model_state if best.model_state[k].is_floating_point())
    train(None, tmp_path / "resumed", resume=True, log=lambda *_: None)

    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    updates = [run.training.averages["ema"]["updates"] for run in (resumed, straight)]
    assert updates == [2 * (256 // 64)] * 2
    for name, tensor in straight.training.averages["ema"]["model_state"].items():
        assert torch.equal(tensor, resumed.training.averages["ema"]["model_state"][name]), name
    assert all("val_acc_raw" in row for row in straight.training.history)
    assert "val_acc_raw" in (tmp_path / "straight" / "history.csv").read_text().splitlines()[0]
    assert any("raw weights" in line for line in lines)


def test_an_ema_decay_outside_0_to_1_is_refused(small_csv, tmp_path):
    from ferkit.errors import FerkitError

    with pytest.raises(FerkitError, match="ema must be a decay"):
        train(_config(small_csv, ema=1.5), tmp_path / "run", log=lambda *_: None)


def test_the_epoch_average_is_the_plain_mean_of_its_snapshots():
    from ferkit.models import create_model
    from ferkit.train.averaging import EpochAverage

    torch.manual_seed(0)
    model = create_model("mini_xception", num_classes=7)
    average = EpochAverage(model)
    snapshots = []
    for shift in (1.0, 2.0, 6.0):
        with torch.no_grad():
            for tensor in model.state_dict().values():
                tensor.add_(shift) if tensor.is_floating_point() else tensor.fill_(int(shift))
        average.update(model)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
    assert average.snapshots == 3
    for name, value in average.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, torch.stack([s[name] for s in snapshots]).mean(0))
        else:
            assert int(value) == 6, name


def test_with_swa_the_epoch_average_is_validated_saved_as_best_and_resumed_exactly(small_csv, tmp_path):
    config = dict(epochs=3, subset=256, swa=0.5, optimizer="sgd", lr=0.02, schedule="none", augment={})
    lines = []
    train(_config(small_csv, **config), tmp_path / "straight", log=lines.append)
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    # The last half of 3 epochs: the ends of epochs 2 and 3 (at 2/3 and 3/3) are averaged, not epoch 1 (1/3).
    assert [row["swa_snapshots"] for row in straight.training.history] == [0, 1, 2]
    assert "swa_snapshots" in (tmp_path / "straight" / "history.csv").read_text().splitlines()[0]
    assert straight.training.averages["swa"]["snapshots"] == 2
    history = straight.training.history
    assert np.isnan(history[0]["val_acc_raw"]) and not np.isnan(history[2]["val_acc_raw"])
    assert any("average of 2 epoch(s)" in line for line in lines)

    train(_config(small_csv, **config), tmp_path / "resumed", log=lambda *_: None, stop_after_epochs=2)
    best = load_checkpoint(tmp_path / "resumed" / "best.pt")
    if best.info.epoch == 2:  # the saved best is the average (one snapshot, its BN statistics re-estimated)
        after_two = load_checkpoint(tmp_path / "resumed" / "last.pt")
        for name, tensor in best.model_state.items():
            assert torch.equal(tensor, after_two.training.averages["swa"]["model_state"][name]), name
    train(None, tmp_path / "resumed", resume=True, log=lambda *_: None)
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for name, tensor in straight.training.averages["swa"]["model_state"].items():
        assert torch.equal(tensor, resumed.training.averages["swa"]["model_state"][name]), name


def test_swa_recomputes_the_averages_batchnorm_statistics_unless_told_to_average_them(small_csv, tmp_path):
    config = dict(epochs=2, subset=256, swa=1.0, optimizer="sgd", lr=0.02, schedule="none", augment={})
    for mode in ("recompute", "average"):
        train(_config(small_csv, swa_bn=mode, **config), tmp_path / mode, log=lambda *_: None)
    states = {mode: load_checkpoint(tmp_path / mode / "last.pt") for mode in ("recompute", "average")}
    same_weights = [k for k in states["average"].training.averages["swa"]["model_state"] if "running_mean" in k]
    assert same_weights
    for name in same_weights:  # the averaged statistics differ from those measured on the averaged net
        assert not torch.equal(states["average"].training.averages["swa"]["model_state"][name],
                               states["recompute"].training.averages["swa"]["model_state"][name]), name
    weight = next(k for k in states["average"].training.averages["swa"]["model_state"] if k.endswith("weight"))
    assert torch.equal(states["average"].training.averages["swa"]["model_state"][weight],
                       states["recompute"].training.averages["swa"]["model_state"][weight])


@pytest.mark.parametrize("changes, message", [(dict(swa=1.5), "swa must be"), (dict(swa=0.5, ema=0.99), "choose one"),
                                              (dict(swa=0.5, swa_bn="median"), "unknown swa_bn")])
def test_bad_swa_settings_are_refused(small_csv, tmp_path, changes, message):
    from ferkit.errors import FerkitError

    with pytest.raises(FerkitError, match=message):
        train(_config(small_csv, **changes), tmp_path / "run", log=lambda *_: None)


def test_the_run_eta_ends_at_the_time_budget_when_that_comes_first():
    import time

    from ferkit.train.schedule import run_eta

    assert run_eta(3000, rate=100) == 30.0
    assert run_eta(3000, rate=100, deadline=time.time() + 3600) == 30.0  # the images run out first
    assert 595 < run_eta(10**6, rate=100, deadline=time.time() + 600) <= 600  # the budget runs out first
    assert run_eta(3000, rate=100, deadline=time.time() - 5) == 0.0


def test_progressive_resizing_trains_on_small_faces_first_then_at_full_size(small_csv, tmp_path, monkeypatch):
    from ferkit.train import progressive

    seen_sides = []
    real_downscale = progressive.downscale

    def recording_downscale(x, side):
        out = real_downscale(x, side)
        seen_sides.append(tuple(out.shape[-2:]))
        return out

    monkeypatch.setattr(progressive, "downscale", recording_downscale)
    config = _config(small_csv, model="vgg", model_kwargs={"width": 8, "convs_per_stage": [1, 1, 1, 1]}, epochs=4,
                     subset=256, progressive_size=32, progressive_until=0.5)
    summary = train(config, tmp_path / "run", log=lambda *_: None)
    history = load_checkpoint(tmp_path / "run" / "last.pt").training.history
    assert [row["train_side"] for row in history] == ["32", "32", "48", "48"]
    assert seen_sides == [(32, 32)] * (2 * history[0]["steps"])  # half the steps, all at 32×32
    assert 0.0 <= summary["best_val_acc"] <= 1.0  # validated at full size throughout
    assert "train_side" in (tmp_path / "run" / "history.csv").read_text().splitlines()[0]


def test_progressive_resizing_refuses_a_net_with_a_fixed_input_size_and_bad_settings(small_csv, tmp_path):
    from ferkit.errors import FerkitError

    with pytest.raises(FerkitError, match="simple_cnn cannot take 32×32 input"):
        train(_config(small_csv, model="simple_cnn", progressive_size=32), tmp_path / "a", log=lambda *_: None)
    with pytest.raises(FerkitError, match="progressive_size must be"):
        train(_config(small_csv, model="vgg", progressive_size=48), tmp_path / "b", log=lambda *_: None)
    with pytest.raises(FerkitError, match="progressive_size must be"):
        train(_config(small_csv, model="vgg", progressive_size=32, progressive_until=0), tmp_path / "c",
              log=lambda *_: None)


def test_validate_from_skips_scoring_early_epochs_and_still_selects_from_the_later_ones(small_csv, tmp_path):
    import math

    config = _config(small_csv, epochs=4, subset=256, validate_from=0.5, ema=0.9, validate_raw=False)
    lines = []
    summary = train(config, tmp_path / "run", log=lines.append)
    history = load_checkpoint(tmp_path / "run" / "last.pt").training.history
    assert [math.isnan(row["val_acc"]) for row in history] == [True, False, False, False]  # 1/4 < 0.5 <= 2/4
    assert "val_acc_raw" not in history[-1]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best.info.epoch >= 2 and best.info.metrics["val_acc"] == summary["best_val_acc"]
    assert any("PublicTest not scored before 0.5 of the run" in line for line in lines)
    with pytest.raises(Exception, match="validate_from must be"):
        train(_config(small_csv, validate_from=1.0), tmp_path / "bad", log=lambda *_: None)


def test_bf16_is_flagged_on_a_cpu_that_would_emulate_it(small_csv, tmp_path, monkeypatch):
    from ferkit.train import devices

    avx2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
    zen4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    sapphire = "flags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
    assert devices.cpu_has_native_bf16(avx2) is False
    assert devices.cpu_has_native_bf16(zen4) is True and devices.cpu_has_native_bf16(sapphire) is True
    assert devices.cpu_has_native_bf16("no flags here") is None

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    lines = []
    train(_config(small_csv, epochs=1, subset=128, bf16=True), tmp_path / "run", log=lines.append)
    assert any("bf16=true on a CPU without AVX-512 BF16 or AMX" in line for line in lines)
    lines.clear()
    train(_config(small_csv, epochs=1, subset=128), tmp_path / "fp32", log=lines.append)
    assert not any("bf16" in line for line in lines)
