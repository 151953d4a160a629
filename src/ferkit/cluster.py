"""Ray for `ferkit batch` and `ferkit sweep`: an embedded local instance by default, or an existing cluster by
address; how many recognition workers it holds; Ray's own output kept off the terminal."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys

from ferkit.errors import FerkitError


def connect(address: str | None = None, cpus: int | None = None) -> dict:
    """Start (address None: a new local Ray in this process, sized to the machine, or to `cpus`) or join (auto,
    HOST:PORT, ray://HOST:10001) a Ray cluster; return its resources."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address and not address.startswith("ray://") and os.path.exists(os.path.expanduser("~/.ray/auth_token")):
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # a cluster made by `ray start` asks for its token
    import ray

    if address and not ray.is_initialized():
        _check_reachable(address)
        if _on_loopback(address):
            # Ray 2.60 swaps a loopback address for this machine's network address before it connects
            # (services.resolve_ip_for_localhost), and so never finds a cluster whose nodes are on 127.0.0.1 (as in
            # the tests). Its switch for single-machine platforms keeps this driver on the loopback too.
            import ray._private.ray_constants as ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
                  "configure_logging": True}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                # On loopback: an embedded Ray serves this job only, and nobody on the network needs to reach it.
                ray.init(address="local", num_cpus=cpus, _node_ip_address="127.0.0.1", **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FerkitError(f"cannot start or reach {where}: {first}") from None
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return ray.cluster_resources()


def _on_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Ray retries an address that does not answer for minutes, printing C++ warnings: look first, and say so in
    one line. `auto` means the cluster that `ray start` left a note of on this machine."""
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS", "")
        note = "/tmp/ray/ray_current_cluster"
        if not target and os.path.exists(note):
            with open(note) as f:
                target = f.read().strip()
        if not target or target == "auto":
            raise FerkitError("--address auto: no Ray cluster runs on this machine (`ray start --head` starts one; "
                              "or leave out --address for a local Ray of this job's own)")
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise FerkitError(f"--address {address}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FerkitError(f"cannot reach the Ray cluster at {target}: {exc.strerror or exc}") from None


def worker_count(resources: dict, workers: int | None, cpus_per_worker: float, gpus_per_worker: float) -> int:
    """--workers, or as many as the cluster's CPUs (and GPUs, when workers take a share of one) can hold."""
    if workers is not None:
        if workers < 1:
            raise FerkitError("--workers must be at least 1")
        return workers
    fits = [math.floor(resources.get("CPU", 1) / cpus_per_worker + 1e-9)] if cpus_per_worker > 0 else []
    if gpus_per_worker > 0:
        if not resources.get("GPU"):
            raise FerkitError(f"--gpus-per-worker {gpus_per_worker} but the Ray cluster has no GPU")
        fits.append(math.floor(resources["GPU"] / gpus_per_worker + 1e-9))
    return max(1, min(fits) if fits else 1)


def threads_per_worker(cpus_per_worker: float) -> int:
    """ONNX Runtime threads for one worker's models: its CPU share, at least one."""
    return max(1, round(cpus_per_worker))


def connected() -> bool:
    import ray

    return ray.is_initialized()


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


@contextlib.contextmanager
def quiet_output():
    """While Ray runs, its C++ core, its workers and its error reports write notes on this process's stdout and
    stderr (file descriptors 1 and 2): send them to /dev/null (Ray's session logs keep them) and yield a stream on
    the real stderr for progress."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    real = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    with open(os.devnull, "w") as devnull:
        for fd in saved:
            os.dup2(devnull.fileno(), fd)
    try:
        yield real
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        real.close()
