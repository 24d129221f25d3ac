"""The memory read model: items in namespaces, their embeddings and history (``tables``:
DDL and handlers; ``queries``: what the SDK and HTTP API read)."""

from projections.memory.tables import MIGRATIONS, MemoryProjection

__all__ = ["MIGRATIONS", "MemoryProjection"]
