"""Starting from and learning from other models: init_from (warm restarts, fine-tuning, stages of a recipe) and
distillation from teachers, offline (each clean training face scored once) or online (every augmented batch)."""

from __future__ import annotations

import torch

from ferkit.classifier.checkpoint import load_checkpoint
from ferkit.classifier.shipped import resolve_checkpoint
from ferkit.classifier.torch_classifier import TorchClassifier
from ferkit.classifier.torch_inference import predict_proba
from ferkit.errors import FerkitError


def init_from_checkpoint(model: torch.nn.Module, path: str) -> str:
    """Copy every tensor whose name and shape match from a checkpoint (or run folder, or shipped model name)."""
    source = resolve_checkpoint(path)
    weights = load_checkpoint(source).model_state
    own = model.state_dict()
    taken = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()
             if k in own and own[k].shape == v.shape}
    if not taken:
        raise FerkitError(f"init_from {path}: no tensor matches this model ({type(model).__name__})")
    model.load_state_dict(taken, strict=False)
    fresh = [k for k in own if k not in taken]
    return f"initialised from {source}: {len(taken)} tensors" + (f", fresh: {', '.join(fresh)}" if fresh else "")


def load_teachers(paths: list, num_classes: int, device: torch.device, channels_last: bool, labels=None) -> list:
    """Frozen (model, calibrated temperature) pairs for distillation, loaded as `ferkit evaluate` loads a model;
    their label count (and, given the student's labels, their labels in order) must match the student's."""
    teachers = []
    for path in paths or []:
        teacher = TorchClassifier.load(path)
        if len(teacher.labels) != num_classes:
            raise FerkitError(f"teacher {path} predicts {len(teacher.labels)} classes, not {num_classes}")
        if labels is not None and tuple(teacher.labels) != tuple(labels):
            raise FerkitError(f"teacher {path} predicts {', '.join(teacher.labels)}, not this data's "
                              f"{', '.join(labels)}")
        model = teacher.model.to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        teachers.append((model.eval().requires_grad_(False), teacher.temperature))
    return teachers


@torch.no_grad()
def teacher_probs(teachers: list, x: torch.Tensor, temperature: float, bf16: bool) -> torch.Tensor:
    """The teachers' mean softmax on the same augmented batch the student sees (each at its calibrated
    temperature times the distillation temperature)."""
    total = 0
    for model, calibrated in teachers:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        total = total + torch.softmax(logits.float() / (calibrated * temperature), dim=1)
    return total / len(teachers)


class Distillation:
    """The run's teachers. Offline, `targets` blends their scores of the clean training faces into the targets once;
    online, `blend` does so for every augmented batch (teachers see the full-size face even while the student
    trains on a smaller one)."""

    def __init__(self, config, num_classes: int, device: torch.device, labels=None):
        self.weight, self.temperature, self.bf16 = config.distill_weight, config.distill_temperature, config.bf16
        self.online = config.distill_mode == "online"
        self.device = device
        self.teachers = load_teachers(config.teachers, num_classes, device, config.channels_last, labels)

    def targets(self, images, targets: torch.Tensor, log) -> torch.Tensor:
        """Offline: (1 - w) · targets + w · the teachers' mean flip-averaged prediction of each clean face."""
        if not self.teachers or self.online:
            return targets
        log(f"distilling {len(self.teachers)} teacher(s) offline: scoring {len(images):,} training images")
        scored = torch.stack([torch.from_numpy(predict_proba(model, images, tta=["flip"], device=self.device,
                                                             temperature=t * self.temperature))
                              for model, t in self.teachers]).mean(0).to(self.device)
        return (1 - self.weight) * targets + self.weight * scored

    def blend(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Online: the batch's targets blended with the teachers' prediction of the same augmented batch."""
        if not self.teachers or not self.online:
            return targets
        return (1 - self.weight) * targets + self.weight * teacher_probs(self.teachers, x, self.temperature,
                                                                         self.bf16)
