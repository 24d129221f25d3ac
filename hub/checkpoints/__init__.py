"""``hub.checkpoints``: framework checkpoints (LangGraph) as events on the log."""
