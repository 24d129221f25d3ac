"""``agent-hub`` subprocesses for crash and failover tests, followed through their JSON logs."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process, TaskGroup

__all__ = ["HubProcess", "children"]


class HubProcess:
    """One ``agent-hub`` command in its own process, with what its logs say."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.args = list(args)
        self.env = dict(env) | {"HUB_LOG_JSON": "true", "HUB_LOG_LEVEL": "info"}
        self.proc: Process | None = None
        self.assignments: dict[str, set[str]] = {}  # projector -> its partitions
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []

    async def start(self, tg: TaskGroup) -> None:
        self.proc = await anyio.open_process(
            [sys.executable, "-m", "hub.cli", *self.args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        tg.start_soon(self._follow)

    async def _follow(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._read(self.proc.stderr)  # ends when the process is closed

    async def _read(self, stream: Any) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode(errors="replace")
                self.lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                self.events.append(event)
                mine = self.assignments.setdefault(str(event.get("projector")), set())
                if event.get("event") == "projector.assigned":
                    mine |= set(event["partitions"])
                elif event.get("event") == "projector.revoked":
                    mine -= set(event["partitions"])

    def assigned(self, projector: str) -> set[str]:
        """The partitions ``projector`` holds in this process, as its logs said."""
        return self.assignments.get(projector, set())

    def saw(self, name: str) -> bool:
        return any(e.get("event") == name for e in self.events)

    def kill(self) -> None:
        """SIGKILL: no goodbye."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        self.assignments = {}

    async def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(timeout):
            return await self.proc.wait()

    async def close(self) -> None:
        if self.proc is not None:
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.aclose()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])


def children(pid: int, marker: str) -> list[int]:
    """Child processes of ``pid`` whose command line contains ``marker`` (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(fields.rsplit(")", 1)[1].split()[1])
        if parent == pid and marker in cmdline:
            found.append(int(entry.name))
    return found
