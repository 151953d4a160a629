"""Make an ensemble checkpoint from trained ones (`ferkit ensemble MEMBER... --out PATH`).

The checkpoint holds every member's weights and records, per member, what rebuilds it (architecture, its
arguments, its temperature) and where it came from (the name given, the file's sha256, its training-time
PublicTest accuracy). It loads, evaluates, calibrates, exports and teaches like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from ferkit.classifier.checkpoint import Checkpoint, ModelInfo, save_checkpoint
from ferkit.errors import FerkitError
from ferkit.models.ensemble import ARCH, Ensemble


def make_ensemble(sources: list[str], tta: list[str] | None = None) -> Checkpoint:
    """The checkpoint of the ensemble of `sources` (shipped names, run folders or checkpoint files). TTA: as
    given, else the members' own if they all agree."""
    from ferkit.classifier.torch_classifier import TorchClassifier
    from ferkit.files import file_sha256

    if len(sources) < 2:
        raise FerkitError("an ensemble needs at least two members")
    members, specs = [], []
    for source in sources:
        member = TorchClassifier.load(source)  # errors name the file
        info = member.info
        if info.members:
            raise FerkitError(f"{source}: is itself an ensemble; list its members instead")
        if members and member.labels != members[0].labels:
            raise FerkitError(f"{source}: predicts {', '.join(member.labels)}; {sources[0]} predicts "
                              f"{', '.join(members[0].labels)}")
        if members and info.preprocess != members[0].info.preprocess:
            raise FerkitError(f"{source}: its preprocessing differs from {sources[0]}'s")
        members.append(member)
        specs.append({"arch": info.arch, "arch_kwargs": dict(info.arch_kwargs),
                      "temperature": member.temperature, "tta": member.tta, "source": str(source),
                      "sha256": file_sha256(member.source), "parameters": int(info.parameters),
                      "val_acc": info.metrics.get("val_acc")})
    if tta is None:
        if any(m.tta != members[0].tta for m in members):
            raise FerkitError("the members use different TTA; choose one for the ensemble with --tta")
        tta = members[0].tta
    model = Ensemble([m.model for m in members], [m.temperature for m in members])
    info = ModelInfo(arch=ARCH, members=specs, labels=members[0].labels, preprocess=members[0].info.preprocess,
                     tta=list(tta), config={"ensemble": list(sources)},
                     parameters=sum(spec["parameters"] for spec in specs))
    return Checkpoint(info, model.state_dict())


def save_ensemble(sources: list[str], out: str | Path, tta: list[str] | None = None) -> Checkpoint:
    checkpoint = make_ensemble(sources, tta)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, checkpoint)
    return checkpoint
