"""The checkpoints read model: a framework's checkpoints, channel values and pending writes
(``tables``: DDL and handlers; ``queries``: what the SDK reads)."""

from projections.checkpoints.tables import MIGRATIONS, CheckpointsProjection

__all__ = ["MIGRATIONS", "CheckpointsProjection"]
