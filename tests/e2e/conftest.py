"""Helpers for end-to-end tests: ``agent-hub`` run as a user would run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def user_env() -> dict[str, str]:
    """The environment of a user who configured nothing."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AGENT_HUB_", "USE_S3"))
    }


def agent_hub(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=cwd,
        env=env or user_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_module(module: str, *args: str, timeout: float = 300) -> str:
    """``python -m module args`` from the project's root as a user would run it; its
    output (the test fails with its errors if it fails)."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=user_env(),
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def python(
    code: str, *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` as a user's script, in ``cwd`` (default: a user's environment)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env or user_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def local_api(url: str, cwd: Path) -> httpx.Client:
    """A client of the ``agent-hub up`` serving ``cwd``, holding the local admin key it
    made (as a user on that machine would)."""
    token = (cwd / ".agent_hub" / "api_key").read_text().strip()
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})


def start_up(
    cwd: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``agent-hub up`` serving ``cwd`` on ``port``, once it answers ``/healthz``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "up", "--port", str(port), *args],
        cwd=cwd,
        env={**user_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "agent-hub up did not become healthy"
            time.sleep(0.3)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    port = free_port()
    proc = start_up(tmp_path, port)
    try:
        yield f"http://127.0.0.1:{port}", proc, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
