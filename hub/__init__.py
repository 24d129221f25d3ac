"""Agent Hub: the memory, telemetry and configuration of AI agents, kept as an event log.

``async with Hub.connect() as hub: await hub.registry.register("my-agent", ...)``
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.errors import (
    ConfigError,
    ConflictError,
    HubError,
    InputError,
    LogError,
    NotFoundError,
    ProjectionError,
    SchemaError,
    StoreError,
)

if TYPE_CHECKING:
    from hub.client import Hub
    from hub.compat.config import HubConfig
    from hub.compat.metrics import MetricsExporter
    from hub.compat.prompts import S3PromptManager
    from hub.compat.registry import AgentRegistry
    from hub.compat.session import create_session_manager, generate_run_id
    from hub.settings import HubSettings

__all__ = [
    "AgentRegistry",
    "ConfigError",
    "ConflictError",
    "Hub",
    "HubConfig",
    "HubError",
    "HubSettings",
    "InputError",
    "LogError",
    "MetricsExporter",
    "NotFoundError",
    "ProjectionError",
    "S3PromptManager",
    "SchemaError",
    "StoreError",
    "create_session_manager",
    "generate_run_id",
]


_FACADE = {
    "AgentRegistry": "hub.compat.registry",
    "HubConfig": "hub.compat.config",
    "MetricsExporter": "hub.compat.metrics",
    "S3PromptManager": "hub.compat.prompts",
    "create_session_manager": "hub.compat.session",
    "generate_run_id": "hub.compat.session",
}


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import hub.errors` (or the CLI's --help) stays cheap.
    if name in _FACADE:
        import importlib

        return getattr(importlib.import_module(_FACADE[name]), name)
    if name == "Hub":
        from hub.client import Hub

        return Hub
    if name == "HubSettings":
        from hub.settings import HubSettings

        return HubSettings
    raise AttributeError(f"module 'hub' has no attribute {name!r}")
