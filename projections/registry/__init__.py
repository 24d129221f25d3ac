"""The registry read model: agents and their history (``tables``: DDL and handlers;
``queries``: what the SDK and HTTP API read)."""

from projections.registry.tables import MIGRATIONS, RegistryProjection

__all__ = ["MIGRATIONS", "RegistryProjection"]
