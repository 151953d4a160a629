"""`ferkit serve` and `make run` on a port that is already taken: one line that names the port and a free one to
use instead, exit code 2, and nothing from uvicorn (the check runs before the model loads and uvicorn starts)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ferkit.cli import main
from ferkit.web.ports import bind_error, bind_problem

REPO = Path(__file__).resolve().parents[1]
BUSY = re.compile(r"ferkit serve: error: port (\d+) on 127\.0\.0\.1 is in use; choose another: (.+)")


@contextlib.contextmanager
def occupied_port():
    """A port of 127.0.0.1 that another program is listening on, as a server would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def assert_free(port: int) -> None:
    assert bind_error("127.0.0.1", port) is None


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(capsys):
    with occupied_port() as port:
        assert main(["serve", "--port", str(port), "--model", "no-such-model"]) == 2
        out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    busy, suggestion = BUSY.fullmatch(err.strip()).groups()
    free = int(re.fullmatch(r"ferkit serve --port (\d+)", suggestion).group(1))
    assert int(busy) == port and free != port
    assert_free(free)


def test_serve_as_a_command_prints_the_make_hint_and_no_uvicorn_log():
    with occupied_port() as port:
        result = subprocess.run([sys.executable, "-m", "ferkit.cli", "serve", "--port", str(port)],
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "FERKIT_SERVE_RETRY": "make run PORT={port}"})
    assert result.returncode == 2 and result.stdout == ""
    busy, suggestion = BUSY.fullmatch(result.stderr.strip()).groups()
    free = re.fullmatch(r"make run PORT=(\d+) \(or ferkit serve --port (\d+)\)", suggestion).groups()
    assert int(busy) == port and free[0] == free[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_on_a_busy_port_prints_the_line_and_makes_own_status_only():
    venv = Path(sys.executable).parent.parent  # this interpreter's environment, set up already: no pip run
    # under `make test`, make's variables would make this a sub-make ("make[1]: ..."): start a make of its own
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")} | {"LC_ALL": "C"}
    with occupied_port() as port:
        result = subprocess.run(["make", "--no-print-directory", "-o", str(venv / ".ferkit-setup"), "run",
                                 f"VENV={venv}", f"PORT={port}"], cwd=REPO, capture_output=True, text=True,
                                timeout=120, env=env)
    assert result.returncode == 2 and result.stdout == ""
    ours, make_status = result.stderr.strip().split("\n")
    busy, suggestion = BUSY.fullmatch(ours).groups()
    assert int(busy) == port and suggestion.startswith("make run PORT=")
    assert re.fullmatch(r"make: \*\*\* \[Makefile:\d+: run\] Error 2", make_status)  # make's own, unavoidable


def test_other_bind_problems_are_one_clear_line():
    with occupied_port() as port:
        assert bind_problem("127.0.0.1", port).startswith(f"port {port} on 127.0.0.1 is in use; choose another: ")
    assert bind_problem("127.0.0.1", 0) is None
    assert "not an address of this machine" in bind_problem("192.0.2.1", 8000)  # TEST-NET-1: never local
