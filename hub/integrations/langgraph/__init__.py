"""LangGraph on the hub: ``HubCheckpointSaver`` and ``HubStore`` (the ``langgraph`` extra)."""

from hub.integrations.langgraph.saver import HubCheckpointSaver
from hub.integrations.langgraph.store import HubStore

__all__ = ["HubCheckpointSaver", "HubStore"]
