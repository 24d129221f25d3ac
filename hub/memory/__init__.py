"""``hub.memory``: users' facts across threads, and items in namespaces (LangGraph's store)."""
