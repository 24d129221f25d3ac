"""The seed's import path ``from hub.config import get_config, set_config`` (kept as it
is); the code lives in :mod:`hub.compat.config`."""

from hub.compat.config import HubConfig, get_config, set_config

__all__ = ["HubConfig", "get_config", "set_config"]
