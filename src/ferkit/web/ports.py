"""Whether `ferkit serve` can listen where it was asked. Checked before the model loads and uvicorn starts, so a
busy port gives one line that says what to do, not uvicorn's start-up, [Errno 98] and shutdown logs."""

from __future__ import annotations

import errno
import socket


def bind_error(host: str, port: int) -> OSError | None:
    """The error that binding host:port would give now, or None when it is free. The socket is made as uvicorn
    makes its own (IPv6 for an address with a colon, SO_REUSEADDR), so both agree on what is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]"), port))
    except OSError as exc:  # socket.gaierror too: a host name that does not resolve
        return exc
    return None


def free_port_near(host: str, port: int) -> int | None:
    """A port that is free on host now, to suggest instead of port: 8080 and up first, then the ones after port."""
    for candidate in (*range(8080, 8090), *range(port + 1, port + 50)):
        if candidate != port and 1024 <= candidate <= 65535 and bind_error(host, candidate) is None:
            return candidate
    return None


def bind_problem(host: str, port: int, retry: str | None = None) -> str | None:
    """One line saying why `ferkit serve` cannot listen on host:port and what to run instead, or None when it can.
    retry: another command to suggest first (`make run PORT={port}`), with {port} for the free port found."""
    exc = bind_error(host, port)
    if exc is None:
        return None
    free = free_port_near(host, port)
    instead = f"ferkit serve --port {free}"
    if retry:
        instead = f"{retry.format(port=free)} (or {instead})"
    instead = f"choose another: {instead}" if free else "choose another port"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; {instead}"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs administrator rights (ports below 1024 do); {instead}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: not an address of this machine (try 127.0.0.1 or 0.0.0.0)"
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"
