"""The cluster files of docs/scale.md stay usable: the `ray up` file passes Ray's own schema, and every `ferkit
batch` command they hold parses with ferkit's command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from ferkit.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def batch_commands(text: str) -> list[list[str]]:
    return [shlex.split(m) for m in re.findall(r"(ferkit batch [^\n]*)", text)]


def test_the_ray_up_file_passes_rays_schema():
    pytest.importorskip("ray", reason="make setup installs ray[data]")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` does first: the provider's defaults, then the schema
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}


def test_the_kuberay_job_runs_a_batch_command_that_parses():
    job = yaml.safe_load((DEPLOY / "kuberay-batch.yaml").read_text())
    assert job["kind"] == "RayJob" and job["spec"]["rayClusterSpec"]["rayVersion"] == "2.60.0"
    argv = shlex.split(job["spec"]["entrypoint"])
    args = build_parser().parse_args(argv[1:])
    assert args.command == "batch" and args.address == "auto" and args.workers == 32


@pytest.mark.parametrize("name", ["ray-cluster.yaml", "kuberay-batch.yaml"])
def test_every_batch_command_in_the_comments_parses(name):
    commands = batch_commands((DEPLOY / name).read_text())
    assert commands
    for argv in commands:
        assert build_parser().parse_args(argv[1:]).command == "batch"


def test_the_image_copies_what_exists_and_pins_rays_release():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "rayproject/ray:2.60.0-" in text
    for line in text.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[2:-1]:
                assert (DEPLOY.parent / source).exists(), source
