"""ONNX Runtime sessions as ferkit opens them, for the classifier and the face detector alike: the execution
provider a device names, the thread count, and no spinning.

Spinning: ONNX Runtime's intra-op threads keep spinning after each call, waiting for the next one. Recognition
calls two sessions in turn (detector, then classifier), so the spinning threads of one fight the working threads
of the other for the cores: turning it off took a 4-face frame from 37–64 ms to 27–38 ms on a 2-core EPYC
(docs/benchmarks.md, 2026-12-03).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from ferkit.errors import FerkitError

DEVICES = ("auto", "cpu", "cuda", "openvino")
PRECISIONS = ("auto", "fp32", "int8")  # the graphs recognition runs: auto picks per model and machine
PROVIDERS = {"cuda": "CUDAExecutionProvider", "openvino": "OpenVINOExecutionProvider"}
PACKAGES = {"cuda": "onnxruntime-gpu", "openvino": "onnxruntime-openvino"}
_warned: set[str] = set()


def available_cores() -> int:
    """The CPUs this process may run on (a container's or taskset's limit, not the machine's count): what
    threads are shared out from."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def providers_for(device: str = "auto") -> list[str]:
    """The providers to ask ONNX Runtime for, best first; a device whose provider is not installed falls back to
    the CPU with one line on stderr (once per process)."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise FerkitError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "auto":
        return [PROVIDERS["cuda"], "CPUExecutionProvider"] if PROVIDERS["cuda"] in available else [
            "CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if PROVIDERS[device] in available:
        return [PROVIDERS[device], "CPUExecutionProvider"]
    if device not in _warned:
        _warned.add(device)
        print(f"ferkit: no {device} execution provider here (install {PACKAGES[device]}); running on the CPU",
              file=sys.stderr, flush=True)
    return ["CPUExecutionProvider"]


def open_session(path: str | Path, threads: int | None = None, device: str = "auto"):
    """An InferenceSession on `device`'s provider, with `threads` intra-op threads and no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=providers_for(device))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for unreadable files
        raise FerkitError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None


@functools.lru_cache(maxsize=None)
def uses_int8_by_default(device: str = "auto") -> bool:
    """Whether INT8 graphs are the faster choice here: on the CPU provider of an x86 CPU with AVX2 (int8 dot
    products; VNNI makes them faster still), not on a GPU provider, where fp32 kernels are the fast path."""
    if providers_for(device)[0] != "CPUExecutionProvider":
        return False
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx2" in flags
