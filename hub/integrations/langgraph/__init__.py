"""LangGraph on the hub: ``HubCheckpointSaver`` (install the ``langgraph`` extra)."""

from hub.integrations.langgraph.saver import HubCheckpointSaver

__all__ = ["HubCheckpointSaver"]
