"""The seed's import path ``from hub.registry import AgentRegistry`` (kept as it is).

The async client is :class:`hub.agents.client.RegistryClient` (``hub.registry`` on a
``Hub``); the seed's synchronous facade lives in :mod:`hub.compat.registry`."""

from hub.agents.client import Agent, RegisterResult, RegistryClient
from hub.compat.registry import AgentRegistry

__all__ = ["Agent", "AgentRegistry", "RegisterResult", "RegistryClient"]
