"""Agent Hub's errors (defined in :mod:`schemas.errors`, the bottom layer)."""

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

__all__ = [
    "ConfigError",
    "ConflictError",
    "HubError",
    "InputError",
    "LogError",
    "NotFoundError",
    "ProjectionError",
    "SchemaError",
    "StoreError",
]
