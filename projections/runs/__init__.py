"""The runs read model (``tables``: DDL and handlers; ``queries``: what the SDK and HTTP
API read)."""

from projections.runs.tables import MIGRATIONS, RunsProjection

__all__ = ["MIGRATIONS", "RunsProjection"]
