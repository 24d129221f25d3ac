"""The seed's ``MetricsExporter``: run metrics, exported as events on ``agenthub.runs``.

``MetricsExporter(agent_id, run_id, prompt_version)`` starts a run (RunStarted, with the
prompt version and the code version as provenance); ``set_stats``, ``set_timing`` and
``set_from_agent_result`` record metrics; ``export()`` sends them and RunFinished, writes
the seed's JSON summary to ``{AGENT_HUB_LOCAL_DIR}/metrics/{date}/{run_id}.json`` and
returns its path. While the log is unreachable the events wait in the local spool;
``MetricsExporter.sync_pending()`` forwards them.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from hub.bridge import SyncHub
from hub.compat.config import get_config, pending_in_spool, seed_hub
from hub.compat.session import generate_run_id
from hub.infra.files import make_dirs, write_atomic
from schemas.errors import HubError, InputError

if TYPE_CHECKING:
    from hub.client import Hub
    from hub.runs.run import Run

__all__ = ["MetricsExporter", "code_version"]

log = structlog.get_logger(__name__)


def code_version() -> str | None:
    """The git SHA of the code running (``GIT_COMMIT``/``GITHUB_SHA``, else ``git``)."""
    for name in ("GIT_COMMIT", "GITHUB_SHA"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None


class MetricsExporter:
    """Metrics of one agent run (see the module docstring)."""

    def __init__(
        self,
        agent_id: str,
        run_id: str | None = None,
        prompt_version: str | None = None,
        *,
        input: Any = None,
        model: str | None = None,
        use_s3: bool | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.run_id = run_id or generate_run_id(agent_id)
        self.prompt_version = prompt_version
        self.stats: dict[str, float] = {}
        self.timings: dict[str, float] = {}
        self.tokens: dict[str, int] = {}
        self.tool_usage: dict[str, dict[str, float]] = {}
        self.started_at = datetime.now(UTC)
        self._path: str | None = None
        self._use_s3 = get_config().use_s3 if use_s3 is None else use_s3
        self._sync: SyncHub = seed_hub(use_s3)
        provenance = {
            "prompt_name": agent_id,
            "prompt_version": prompt_version,
            "model_name": model,
            "code_version": code_version(),
        }

        async def begin(hub: Hub) -> Run:
            run = hub.runs.start(agent_id, run_id=self.run_id, input=input, provenance=provenance)
            return await run.begin()

        self._run: Run = self._sync.call(begin)

    def set_stats(self, name: str, value: float) -> None:
        """A statistic of the run (``total_jobs``, ``success_rate``)."""
        self._sync.call(lambda _: self._run.set_stats(name, value))
        self.stats[name] = value

    def set_timing(self, name: str, seconds: float) -> None:
        """A duration in seconds."""
        self._sync.call(lambda _: self._run.set_timing(name, seconds))
        self.timings[name] = seconds

    def set_from_agent_result(self, result: Any) -> None:
        """Tokens, latency, cycles and tool usage from a Strands ``AgentResult``."""
        from hub.runs.run import result_usage

        usage, values = result_usage(result)  # checks the type before anything is recorded
        self._sync.call(lambda _: self._run.record_result(result))
        for key, count in (
            ("input_tokens", usage.input_tokens),
            ("output_tokens", usage.output_tokens),
            ("total_tokens", usage.total_tokens),
        ):
            self.tokens[key] = self.tokens.get(key, 0) + count
        for name, value in values.items():
            if name.startswith("tool."):
                _, tool, what = name.split(".", 2)
                self.tool_usage.setdefault(tool, {})[what] = value
            elif name in ("latency_ms", "cycles"):
                self.timings[name] = value

    def summary(self) -> dict[str, Any]:
        """The seed's metrics document."""
        return {
            "agent_id": self.agent_id,
            "run_id": self.run_id,
            "prompt_version": self.prompt_version,
            "started_at": self.started_at.isoformat(),
            "exported_at": datetime.now(UTC).isoformat(),
            "stats": self.stats,
            "timings": self.timings,
            "tokens": self.tokens,
            "tool_usage": self.tool_usage,
        }

    def export(self, *, status: str = "success", error: str | None = None) -> str:
        """Finish the run (its metrics and RunFinished go to the log, or the spool when
        offline) and write the JSON summary; returns the summary's path."""
        if self._path is not None:
            return self._path
        document = json.dumps(self.summary(), indent=2, default=str).encode()
        day = self.started_at.strftime("%Y-%m-%d")
        path = get_config().local_dir / "metrics" / day / f"{self.run_id}.json"
        try:
            make_dirs(path.parent)
            write_atomic(path, document, durable_name=False)
        except OSError as exc:  # the events are the record; the file is a convenience
            log.warning("metrics.summary_not_written", path=str(path), error=str(exc))
        where = str(path)
        try:  # also kept with the run, in S3 when USE_S3=true
            stored = self._sync.call(
                lambda _: self._run.store_artifact(
                    "metrics.json", document, content_type="application/json"
                )
            )
            if self._use_s3:
                where = stored.uri
        except HubError as exc:
            if not exc.retriable:
                raise
            log.warning("metrics.summary_not_uploaded", error=str(exc))
        self._sync.call(lambda _: self._run.finish(status, error=error))
        self._path = where
        return where

    @staticmethod
    def sync_pending() -> int:
        """Forward events spooled while offline to the log; returns how many were sent
        (0 when there were none or the log is still unreachable)."""
        if not pending_in_spool():
            return 0
        try:
            return seed_hub().call(lambda hub: hub.sync())
        except HubError as exc:
            if isinstance(exc, InputError) or not exc.retriable:
                raise
            log.warning("metrics.sync_pending_offline", error=str(exc))
            return 0
