"""The runs read model: ``tables`` (DDL and the batch that writes them), ``handlers``
(the handler table), ``queries`` (what the SDK and HTTP API read)."""

from projections.runs.handlers import RunsProjection
from projections.runs.tables import MIGRATIONS

__all__ = ["MIGRATIONS", "RunsProjection"]
