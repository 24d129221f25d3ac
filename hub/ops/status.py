"""What each projection is doing: version, state, positions and lag per partition.

Computed from the stored positions and the log's end offsets, so any process can
report it (``agent-hub status``, ``GET /v1/projections``), not only the projector's own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, computed_field

from hub.infra.ports import TopicPartition
from hub.runtime import Runtime

__all__ = ["PartitionStatus", "ProjectionStatus", "RebuildStatus", "projection_status"]

REBUILDS = "SELECT name, shadow, state, done, total, rate, started_at, updated_at FROM hub.rebuilds"
PROJECTIONS = (
    "SELECT name, version, schema, state, updated_at FROM hub.projections ORDER BY name, version"
)


class PartitionStatus(BaseModel):
    topic: str
    partition: int
    position: int | None
    end_offset: int
    lag: int
    error: str | None = None  # e.g. a position past the log's end


class RebuildStatus(BaseModel):
    """A rebuild of the projection, in progress or finished."""

    state: str  # rebuilding, catching_up or swapped
    shadow: str
    done: int
    total: int
    rate: float
    eta_s: float | None
    started_at: datetime
    updated_at: datetime


class ProjectionStatus(BaseModel):
    name: str
    version: int
    schema_name: str
    state: str
    current: bool
    lag: int
    applied: int
    duplicates: int
    dead_lettered: int
    partitions: list[PartitionStatus]
    rebuild: RebuildStatus | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def errors(self) -> list[str]:
        """What is wrong with this projection (empty when nothing is)."""
        return [f"{self.name}: {p.error}" for p in self.partitions if p.error]


async def projection_status(runtime: Runtime) -> list[ProjectionStatus]:
    """Status of every projection version recorded in ``hub.projections``."""
    store = runtime.positions
    topics_of = {p.name: [str(t) for t in p.topics] for p in runtime.projections}
    current = {(p.name, p.version) for p in runtime.projections}
    out: list[ProjectionStatus] = []
    rebuilds = await _rebuilds(runtime)
    for row in await runtime.pool.fetch(PROJECTIONS):
        tps = [
            TopicPartition(topic, p)
            for topic in topics_of.get(row["name"], [])
            for p in range(await runtime.log.partitions_for(topic))
        ]
        positions = await store.all(row["schema"])
        counts = await store.stats(row["schema"])
        ends: dict[TopicPartition, int] = await runtime.log.end_offsets(tps) if tps else {}
        begins: dict[TopicPartition, int] = {}
        missing = [tp for tp in tps if tp not in positions]
        if missing:
            begins = await runtime.log.beginning_offsets(missing)
        parts = []
        for tp in tps:
            pos = positions.get(tp)
            start = pos if pos is not None else begins.get(tp, 0)
            parts.append(
                PartitionStatus(
                    topic=tp.topic,
                    partition=tp.partition,
                    position=pos,
                    end_offset=ends[tp],
                    lag=max(0, ends[tp] - start),
                    error=_past_end(tp, pos, ends[tp]),
                )
            )
        out.append(
            ProjectionStatus(
                name=row["name"],
                version=row["version"],
                schema_name=row["schema"],
                state=row["state"],
                current=(row["name"], row["version"]) in current,
                lag=sum(p.lag for p in parts),
                applied=counts["applied"],
                duplicates=counts["duplicates"],
                dead_lettered=counts["dead_lettered"],
                partitions=parts,
                rebuild=rebuilds.get(row["name"]) if row["state"] == "live" else None,
            )
        )
    return out


def _past_end(tp: TopicPartition, position: int | None, end: int) -> str | None:
    if position is None or position <= end:
        return None
    return (
        f"position {position} on {tp} is past the log's end {end}: events written there "
        "would be skipped (replay or rebuild the projection)"
    )


async def _rebuilds(runtime: Runtime) -> dict[str, RebuildStatus]:
    exists = await runtime.pool.fetchval("SELECT to_regclass('hub.rebuilds') IS NOT NULL")
    if not exists:
        return {}
    out = {}
    for r in await runtime.pool.fetch(REBUILDS):
        left = max(0, r["total"] - r["done"])
        eta = left / r["rate"] if r["rate"] > 0 and r["state"] != "swapped" else None
        out[r["name"]] = RebuildStatus(
            state=r["state"],
            shadow=r["shadow"],
            done=r["done"],
            total=r["total"],
            rate=r["rate"],
            eta_s=eta,
            started_at=r["started_at"],
            updated_at=r["updated_at"],
        )
    return out


def format_status(statuses: list[ProjectionStatus], info: dict[str, Any]) -> str:
    """A human-readable table."""
    lines = [f"log: {info.get('log')}   database: {info.get('database')}"]
    head = f"{'projection':<16}{'ver':>4}  {'state':<12}{'partition':<26}"
    lines.append(f"{head}{'position':>10}{'end':>10}{'lag':>8}")
    for st in statuses:
        for i, p in enumerate(st.partitions):
            head = f"{st.name:<16}{st.version:>4}  {st.state:<12}" if i == 0 else " " * 34
            pos = "-" if p.position is None else str(p.position)
            lines.append(
                f"{head}{f'{p.topic}[{p.partition}]':<26}{pos:>10}{p.end_offset:>10}{p.lag:>8}"
            )
        if st.rebuild is not None and st.rebuild.state != "swapped":
            r = st.rebuild
            lines.append(
                f"{'':<34}rebuilding into {r.shadow}: {r.done:,}/{r.total:,} events, "
                f"{r.rate:,.0f} ev/s, ETA {r.eta_s or 0:,.0f}s"
            )
        if not st.partitions:
            lines.append(f"{st.name:<16}{st.version:>4}  {st.state:<12}")
        lines.append(
            f"{'':<34}applied {st.applied}, duplicates skipped {st.duplicates}, "
            f"dead-lettered {st.dead_lettered}, total lag {st.lag}"
        )
        lines += [f"ERROR: {error}" for error in st.errors]
    return "\n".join(lines)
