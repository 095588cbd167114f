"""Local servers for the tests (Azurite, the Cosmos-API server): start one on a free loopback port, wait
until it answers, stop it. One implementation for every server the suite starts."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 30


def port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start(name: str, argv: Callable[[int], list[str]], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv(port)`` on a free port and wait until it answers; retry on the rare port race with
    another process. Fails the test session (never skips) when it cannot start."""
    last_error = ""
    for _ in range(3):
        port = free_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv(port), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=log.parent,
                                    start_new_session=True)  # Ctrl-C on pytest does not reach it first
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if port_answers(port):
                return proc, port
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            stop(proc)
            pytest.fail(f"{name} did not answer on {HOST}:{port} within {START_TIMEOUT_S} s; see {log}")
        last_error = f"{name} exited with code {proc.returncode} while starting on port {port}"
    pytest.fail(f"{last_error}; see {log}")


def session_server(name: str, env_var: str, binary: Path, argv: Callable[[int], list[str]],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a running ``name`` for a whole test session (a fixture body: ``yield from`` it).

    ``env_var`` names the port of one already running (``make test`` starts them); when it is unset, or set
    but nothing answers (a stale variable), the session starts its own and stops it at the end. A missing
    binary fails the session on CI and skips locally, with the fix in the message."""
    env_port = os.environ.get(env_var, "").strip()
    if env_port:
        if not env_port.isdigit():
            pytest.fail(f"{env_var}={env_port!r} is not a port number")
        if port_answers(int(env_port)):
            yield int(env_port)
            return
    if not binary.exists():
        message = f"{name} not installed ({binary} missing): run `npm ci`"
        if in_ci():
            pytest.fail(message + " (CI must run these tests, not skip them)")
        pytest.skip(message)
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, port = start(name, argv, log)
    try:
        yield port
    finally:
        stop(proc)
