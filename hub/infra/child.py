"""A process this one owns: started with a lifeline, watched, stopped with SIGTERM.

The child's standard input is a pipe nobody writes to: when this process ends, however it
ends (a SIGKILL included), the pipe closes and the child sees end-of-file on its stdin,
its signal to stop (:func:`wait_for_lifeline_end`). So an owner that dies leaves no
orphan behind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

import anyio
import structlog
from anyio.abc import Process

from schemas.errors import HubError

__all__ = ["ChildProcess", "wait_for_lifeline_end"]

log = structlog.get_logger(__name__)

LIFELINE_GRACE_S = 10.0
"""How long a child has to stop once its lifeline is closed (it finishes starting, then
its batch in hand) before it gets SIGTERM."""
STOP_TIMEOUT_S = 30.0
"""How long a child has after SIGTERM (to finish its batch in hand) before SIGKILL."""


class ChildProcess:
    """``argv`` run with ``env``, as ``what`` in errors and logs; the child stops when
    its stdin ends (see :func:`wait_for_lifeline_end`)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], what: str) -> None:
        self._argv, self._env, self.what = list(argv), dict(env), what
        self._process: Process | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the child (its stdin the lifeline; stdout and stderr this process's)."""
        if self._process is not None:
            return
        self._process = await anyio.open_process(
            self._argv, env=self._env, stdin=subprocess.PIPE, stdout=None, stderr=None
        )
        log.debug("child.started", what=self.what, pid=self._process.pid)

    async def watch(self) -> None:
        """Return once the child was stopped by :meth:`stop`; raise :class:`HubError` if
        it exits on its own."""
        process = self._process
        if process is None:
            raise HubError(f"{self.what}: not started")
        code = await process.wait()
        if not self._stopping:
            raise HubError(f"{self.what} (pid {process.pid}) exited with {code}", retriable=False)

    async def stop(self) -> None:
        """Close the lifeline and wait; SIGTERM after :data:`LIFELINE_GRACE_S`, SIGKILL
        after :data:`STOP_TIMEOUT_S` more; idempotent."""
        self._stopping = True
        process = self._process
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()
            for step, wait_s in (
                (process.terminate, LIFELINE_GRACE_S),
                (process.kill, STOP_TIMEOUT_S),
            ):
                with anyio.move_on_after(wait_s):
                    await process.wait()
                if process.returncode is not None:
                    return
                log.warning("child.late", what=self.what, pid=process.pid, then=step.__name__)
                step()
            await process.wait()


async def wait_for_lifeline_end(fd: int = 0) -> None:
    """Return when the owner's end of the lifeline (``fd``, stdin) closes: the owner
    stopped or died."""
    os.set_blocking(fd, False)
    while True:
        await anyio.wait_readable(fd)
        try:
            if not os.read(fd, 4096):
                return
        except BlockingIOError:
            continue
