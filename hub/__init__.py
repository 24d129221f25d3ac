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
    from hub.settings import HubSettings

__all__ = [
    "ConfigError",
    "ConflictError",
    "Hub",
    "HubError",
    "HubSettings",
    "InputError",
    "LogError",
    "NotFoundError",
    "ProjectionError",
    "SchemaError",
    "StoreError",
]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import hub.errors` (or the CLI's --help) stays cheap.
    if name == "Hub":
        from hub.client import Hub

        return Hub
    if name == "HubSettings":
        from hub.settings import HubSettings

        return HubSettings
    raise AttributeError(f"module 'hub' has no attribute {name!r}")
