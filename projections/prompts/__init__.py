"""The prompts read model (``tables``: DDL and handlers; ``queries``: what the SDK and HTTP
API read)."""

from projections.prompts.tables import MIGRATIONS, PromptsProjection

__all__ = ["MIGRATIONS", "PromptsProjection"]
