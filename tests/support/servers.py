"""Local servers for the tests (Azurite, the Cosmos-API server): start one on a free loopback port, wait
until it answers, stop it. One implementation for every server the suite starts."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable
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
