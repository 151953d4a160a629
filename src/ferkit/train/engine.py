"""The training loop: short enough to read in one sitting. Each feature lives in a module of its own:

- schedule.py: the optimiser, the learning-rate schedule, the run's clock (epochs or a time budget);
- distillation.py: init_from and teachers; averaging.py: ema and swa; progressive.py: progressive resizing;
- objective.py: the splits, soft targets, class weights and the loss; devices.py: device, threads, bf16;
- callbacks.py: history.csv and TensorBoard; ferkit.classifier.checkpoint: what is saved;
- distributed.py: the processes under torchrun (DDP): each one's share of a batch, and what they agree on.

Each epoch draws its shuffling, augmentation and dropout randomness from generators seeded by (seed, epoch),
and a checkpoint is written after every epoch, so a killed run resumed with --resume ends with exactly the
weights an uninterrupted run would have.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

from ferkit.classifier.checkpoint import (
    Checkpoint,
    ModelInfo,
    TrainingState,
    load_checkpoint,
    remove_partial_saves,
    save_checkpoint,
)
from ferkit.classifier.torch_inference import predict_proba
from ferkit.data import load_dataset
from ferkit.data.augment import AugmentConfig, Augmenter, mix_batch
from ferkit.errors import FerkitError
from ferkit.evaluate.metrics import classification_report
from ferkit.models import count_parameters, create_model
from ferkit.render.curves import plot_curves
from ferkit.train import devices
from ferkit.train.averaging import run_average
from ferkit.train.callbacks import TensorBoardLogger, epoch_line, write_history
from ferkit.train.config import TrainConfig
from ferkit.train.distillation import Distillation, init_from_checkpoint
from ferkit.train.distributed import Processes
from ferkit.train.objective import class_weight_vector, soft_cross_entropy, soft_targets, split_data, split_names
from ferkit.train.progressive import ProgressiveResizing, train_sides
from ferkit.train.schedule import RunClock, build_optimizer, build_scheduler, format_eta, run_eta
from ferkit.vision.crop import PREPROCESS, normalise_unit

RUNTIME_KEYS = ("threads", "device", "progress", "tensorboard")


class Trainer:
    def __init__(self, config: TrainConfig | None, out_dir: str | Path, resume: bool = False,
                 epochs: int | None = None, runtime: dict | None = None, log=print):
        """With resume, the run's own saved config is used; `epochs` may extend it, and `runtime` may change
        settings that do not change what is learned (threads, device, progress bar, TensorBoard)."""
        self.out = Path(out_dir)
        self.log = log
        self.resumed = load_checkpoint(self.out / "last.pt") if resume else None
        if self.resumed is not None:
            if self.resumed.training is None:
                raise FerkitError(f"{self.out / 'last.pt'}: holds no training state to resume")
            config = TrainConfig.from_dict(self.resumed.info.config)
        if config is None:
            raise FerkitError("no training config given")
        if epochs:
            config.epochs = epochs
        for key, value in (runtime or {}).items():
            if key not in RUNTIME_KEYS:
                raise FerkitError(f"{key} cannot change when resuming (only {', '.join(RUNTIME_KEYS)})")
            if value is not None:
                setattr(config, key, value)
        if not config.data:
            raise FerkitError("no data: pass --data PATH (a FER2013 csv or a folder of class folders)")
        self.config = config.validate()  # fail now, not after loading the data

    # ------------------------------------------------------------------------------------------ set-up

    def _set_up(self) -> None:
        """Data, model, optimiser, schedule and every feature's state, resumed when there is a last.pt."""
        cfg, processes = self.config, self.processes
        processes.check(cfg)
        self.device = device = processes.device(devices.set_up(cfg, self.log))
        processes.start(device)
        self.out.mkdir(parents=True, exist_ok=True)
        if processes.is_main:
            for leftover in remove_partial_saves(self.out):
                self.log(f"removed {leftover.name}, left by a save that was interrupted")
        faces = processes.first(lambda: load_dataset(cfg.data, labels=cfg.labels, clean=cfg.clean,
                                                     skip_bad_rows=cfg.skip_bad_rows, log=self.log))
        self.train_set, self.val_set = split_data(faces, cfg)
        self.train_name, self.val_name = split_names(faces, cfg)
        self.labels = faces.label_names
        if faces.info.get("folder"):  # a user's own classes: say which the folders gave
            self.log(f"{cfg.data}: {len(self.labels)} classes ({', '.join(self.labels)})")
        # what evaluation needs to notice a score on the very images trained on (None: a folder without splits)
        trained_on = {"data": str(Path(cfg.data).resolve()), "split": cfg.train_split if faces.usage is not None
                      else None}
        torch.manual_seed(cfg.seed)  # weight initialisation
        model = create_model(cfg.model, num_classes=len(self.labels), **cfg.model_kwargs)
        if cfg.init_from and self.resumed is None:
            self.log(init_from_checkpoint(model, cfg.init_from))
        model = model.to(device)
        self.model = model.to(memory_format=torch.channels_last) if cfg.channels_last else model
        self.steps_per_epoch = max(1, len(self.train_set) // cfg.batch_size)  # no ragged last batch: BN needs >1
        self.optimizer = build_optimizer(self.model, cfg)
        self.clock = RunClock(cfg)
        self.scheduler, self.per_batch = build_scheduler(self.optimizer, cfg, self.steps_per_epoch, self.clock)
        # The whole training set lives on the device (83 MB at most); batches are cut and augmented there.
        self.images = torch.from_numpy(self.train_set.images).to(device)
        self.average = run_average(cfg, self.model, self.images)
        self.history, self.best, self.stale, self.start_epoch = [], -1.0, 0, 0
        if self.resumed is not None:
            self._restore(self.resumed)
        self.step_model = processes.wrap(self.model, device, cfg.sync_bn)  # after the average copied plain BN
        if processes.is_main:
            (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=True))
        self.parameters = count_parameters(self.model)
        self.log(f"{cfg.model}: {self.parameters:,} parameters | train {len(self.train_set):,} ({self.train_name}) | "
                 f"val {len(self.val_set):,} ({self.val_name}) | {device}{processes.describe()} | {cfg.epochs} "
                 f"epochs x {self.steps_per_epoch} steps")
        self.info = ModelInfo(arch=cfg.model, arch_kwargs=dict(cfg.model_kwargs), labels=self.labels,
                              preprocess=dict(PREPROCESS), tta=list(cfg.tta), parameters=self.parameters,
                              config=cfg.to_dict(), trained_on=trained_on)
        self.distillation = Distillation(cfg, len(self.labels), device, self.labels)
        self.targets = self.distillation.targets(self.train_set.images,
                                                 soft_targets(self.train_set, cfg, self.log).to(device), self.log)
        self.hard_labels = torch.from_numpy(self.train_set.labels).to(device)
        weights = class_weight_vector(self.train_set.labels, len(self.labels), cfg.class_weights)
        self.class_weights = weights.to(device) if weights is not None else None
        self.augment_config = AugmentConfig.from_dict(cfg.augment)
        self.augmenter = Augmenter(self.augment_config)
        self.progressive = ProgressiveResizing(cfg, self.clock)

    def _restore(self, checkpoint: Checkpoint) -> None:
        training = checkpoint.training
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(training.optimizer)
        self.scheduler.load_state_dict(training.scheduler)
        if self.average is not None:
            self.average.load_state_dict(training.averages[self.average.name])
        self.history, self.best, self.stale = training.history, training.best_val_acc, training.stale_epochs
        self.start_epoch, self.clock.spent = checkpoint.info.epoch, checkpoint.info.elapsed_s
        self.log(f"resuming {self.out} after epoch {self.start_epoch}/{self.config.epochs}")

    # ------------------------------------------------------------------------------------------ the run

    def run(self, stop_after_epochs: int | None = None) -> dict:
        """Train; under torchrun every process runs this, and rank 0 alone logs and writes files."""
        self.processes = Processes.from_environment()
        if not self.processes.is_main:
            self.log = _silent
        try:
            result = self._run(stop_after_epochs)
        except BaseException:
            self.processes.stop(finished=False)
            raise
        self.processes.stop()
        return result

    def _run(self, stop_after_epochs: int | None) -> dict:
        cfg = self.config
        self._set_up()
        board = TensorBoardLogger(self.out / "tensorboard") if cfg.tensorboard and self.processes.is_main else None
        for epoch in range(self.start_epoch, cfg.epochs):
            if self.clock.out_of_time():
                break
            self.clock.begin_epoch()
            train_loss, train_acc, steps, low_res_steps = self._train_epoch(epoch)
            done = self.clock.progress(epoch + 1)
            last_epoch = epoch + 1 == cfg.epochs or bool(self.clock.budget_s and done >= 1.0)
            if self.average is not None:
                self.average.after_epoch(self.model, done, last_epoch)
            chosen = self.average.chosen(self.model) if self.average is not None else self.model
            scored = done >= cfg.validate_from or epoch + 1 == cfg.epochs
            val_loss, report, raw_acc = self._validate(chosen) if scored else _unscored()
            if scored and not self.per_batch:
                self.scheduler.step(report["accuracy"])
            seconds = self.clock.end_epoch()
            row = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                   "train_acc": train_acc, "val_loss": val_loss, "val_acc": report["accuracy"],
                   "val_macro_f1": report["macro_f1"], "seconds": round(seconds, 1),
                   "img_per_s": round(steps * cfg.batch_size / seconds, 1), "steps": steps}
            if self.average is not None and cfg.validate_raw:
                row["val_acc_raw"] = raw_acc
            if self.average is not None:
                row.update(self.average.history_fields())
            if cfg.progressive_size:
                row["train_side"] = train_sides(low_res_steps, steps, cfg.progressive_size)
            self.history.append(row)
            improved = scored and report["accuracy"] > self.best
            self._save(epoch, chosen, report, train_acc, improved, scored)
            if board:
                board.log(row)
            eta = self.clock.spent / (epoch + 1) * (cfg.epochs - epoch - 1)
            if self.clock.budget_s:
                eta = max(0.0, min(eta, self.clock.budget_s - self.clock.spent))
            note = self.average.note() if self.average is not None else ""
            self.log(epoch_line(row, cfg, scored, improved, note, format_eta(eta), self.val_name))
            if self.clock.out_of_time():
                self.log(f"time budget of {cfg.time_budget_min:g} min spent in epoch {epoch + 1} "
                         f"({steps}/{self.steps_per_epoch} steps)")
                break
            if cfg.early_stopping and self.stale >= cfg.early_stopping:
                self.log(f"early stop: no {self.val_name} improvement in {self.stale} epochs")
                break
            if stop_after_epochs is not None and epoch + 1 - self.start_epoch >= stop_after_epochs:
                break
        if board:
            board.close()
        return {"best_val_acc": self.best, "epochs_run": len(self.history), "elapsed_s": self.clock.spent,
                "out": str(self.out), "parameters": self.parameters, "main": self.processes.is_main}

    def _save(self, epoch: int, chosen, report: dict, train_acc: float, improved: bool, scored: bool) -> None:
        """best.pt when the chosen weights improved on the validation split; last.pt, history and curves always."""
        cfg = self.config
        info = replace(self.info, epoch=epoch + 1, elapsed_s=self.clock.spent)
        if improved:
            self.best, self.stale = report["accuracy"], 0
        elif scored:
            self.stale += 1
        if not self.processes.is_main:  # the others hold the same state: the validation figures are shared
            return
        if improved:
            metrics = {"val_split": self.val_name, "val_acc": self.best, "val_macro_f1": report["macro_f1"],
                       "train_acc": train_acc}
            save_checkpoint(self.out / "best.pt", Checkpoint(replace(info, metrics=metrics), chosen.state_dict()))
        averages = {self.average.name: self.average.state_dict()} if self.average is not None else {}
        training = TrainingState(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                                 history=self.history, best_val_acc=self.best, stale_epochs=self.stale,
                                 averages=averages)
        save_checkpoint(self.out / "last.pt", Checkpoint(info, self.model.state_dict(), training))
        write_history(self.out / "history.csv", self.history)
        plot_curves(self.out / "curves.png", self.history, title=f"{cfg.model} on {Path(cfg.data).name}")

    def _validate(self, chosen) -> tuple[float, dict, float]:
        """(loss, classification report) of the chosen weights on the validation split, and the raw weights'
        accuracy (NaN unless they are a separate model and validate_raw is on)."""
        cfg, val, rows = self.config, self.val_set, self.processes.rows(len(self.val_set))

        def probabilities(model_):  # each process scores its rows of the split; all see every row's result
            part = predict_proba(model_, val.images[rows], tta=cfg.tta, device=self.device,
                                 channels_last=cfg.channels_last, bf16=cfg.bf16)
            return self.processes.gather(part, len(val))

        probs = probabilities(chosen)
        report = classification_report(val.labels, probs.argmax(1), self.labels)
        loss = float(-np.log(np.clip(probs[np.arange(len(val)), val.labels], 1e-12, None)).mean())
        raw_acc = float("nan")
        if chosen is not self.model and cfg.validate_raw:  # to show what the average adds
            raw_acc = float((probabilities(self.model).argmax(1) == val.labels).mean())
        return loss, report, raw_acc

    def _train_epoch(self, epoch: int) -> tuple[float, float, int, int]:
        """One pass over the shuffled training set, or until the time budget's deadline. Returns the mean loss,
        the accuracy, the steps run and how many of them were at progressive_size."""
        from tqdm import tqdm

        cfg, device, model, steps, processes = self.config, self.device, self.model, self.steps_per_epoch, \
            self.processes
        shared = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        torch.manual_seed(cfg.seed * 7919 + epoch + 104_729 * processes.rank)  # dropout: each process its own
        order = torch.randperm(len(self.images), generator=shared)  # the same on every process
        gen = processes.generator(shared, cfg.seed * 1_000_003 + epoch)
        model.train()
        # Running sums stay on the device; reading them back (a sync) happens only every `sync_every` steps.
        total_loss, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        low_res_steps, sync_every, deadline = 0, 1 if device.type == "cpu" else 25, self.clock.deadline()
        started = time.time()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                   disable=not (cfg.progress and processes.is_main), file=sys.stderr,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)
        for step in bar:
            index = processes.share(order[step * cfg.batch_size:(step + 1) * cfg.batch_size]).to(device)
            x = self.augmenter(self.images[index].unsqueeze(1).float() / 255.0, gen)
            x, t = mix_batch(x, self.targets[index], self.augment_config, gen)
            if cfg.label_smoothing:
                t = t * (1 - cfg.label_smoothing) + cfg.label_smoothing / t.shape[1]
            x = normalise_unit(x)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            t = self.distillation.blend(x, t)
            x, low_res = self.progressive(x, epoch, step, steps)
            low_res_steps += low_res
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = self.step_model(x)  # under DDP, its backward averages the gradients of all processes
            loss = soft_cross_entropy(logits, t, self.class_weights)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.per_batch:
                self.scheduler.step()
            if self.average is not None:
                self.average.after_step(model)
            total_loss += loss.detach() * len(index)
            correct += (logits.argmax(1) == self.hard_labels[index]).sum()
            seen += len(index)
            if (step + 1) % sync_every == 0 or step + 1 == steps:
                sums = processes.sum(torch.stack([total_loss, correct.to(total_loss.dtype)]))
                if not torch.isfinite(sums[0]):  # summed: every process stops at the same step
                    raise FerkitError(f"training diverged at epoch {epoch + 1}, step {step + 1}; "
                                      "lower the learning rate")
                images = seen * processes.world  # the progress bar counts the global images
                rate = images / (time.time() - started)
                left = run_eta(steps * cfg.batch_size - images + (cfg.epochs - epoch - 1) * steps * cfg.batch_size,
                               rate, deadline)
                bar.set_postfix_str(refresh=False, s=f"loss {sums[0].item() / images:.3f} "
                                    f"acc {sums[1].item() / images:.3f} {rate:.0f} img/s run ETA {format_eta(left)}")
            if deadline is not None and time.time() >= deadline:
                break
        bar.close()
        sums, images = processes.sum(torch.stack([total_loss, correct.to(total_loss.dtype)])), seen * processes.world
        return sums[0].item() / images, sums[1].item() / images, step + 1, low_res_steps


def _silent(*_args, **_kwargs) -> None:
    """The log of every process but rank 0 under torchrun: one voice, not N copies."""


def _unscored() -> tuple[float, dict, float]:
    """An epoch too early in the run to be its best: the time goes to training instead of validation."""
    nan = float("nan")
    return nan, {"accuracy": nan, "macro_f1": nan}, nan


def train(config: TrainConfig | None, out_dir: str | Path, resume: bool = False, epochs: int | None = None,
          runtime: dict | None = None, log=print, stop_after_epochs: int | None = None) -> dict:
    return Trainer(config, out_dir, resume=resume, epochs=epochs, runtime=runtime, log=log).run(
        stop_after_epochs=stop_after_epochs)
