"""The event ids a projection has applied, kept for a window, so a copy sent again is dropped.

Positions make a record read twice harmless; what they cannot catch is the same event
appended twice at two offsets: an offline spool forwarded again after a crash between
sending and deleting a batch, or a write retried after an acknowledgement was lost. Both
send the second copy soon after the first, or when the writer comes back (``agent-hub
sync``). So each projection remembers the ids it applied for ``HUB_DEDUPE_WINDOW_DAYS``
(30 by default; 0: forever) and forgets older ones in the background, in chunks: the
table stays the size of the window instead of growing with the log. ``applied_at`` is
the transaction's time; a BRIN index on it (rows arrive in time order) finds the old
rows without a second B-tree to write per event.

This module is the only writer of ``{schema}.applied_events``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from consumers.positions import CLAIM_LOCK, split_claimed
from hub.infra.db import is_retriable
from hub.infra.ports import PositionStore, TopicPartition

__all__ = ["AppliedEvents", "create_applied_events", "record_new"]

CREATE = """
CREATE TABLE IF NOT EXISTS {schema}.applied_events (
    event_id    uuid PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {schema}.applied_events
    ADD COLUMN IF NOT EXISTS applied_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS applied_events_at ON {schema}.applied_events USING brin (applied_at);
"""
RECORD = """
WITH recorded AS (
    INSERT INTO {schema}.applied_events (event_id) SELECT unnest($1::uuid[])
    ON CONFLICT DO NOTHING RETURNING event_id
)
SELECT u.event_id FROM unnest($1::uuid[]) AS u (event_id)
WHERE u.event_id NOT IN (SELECT event_id FROM recorded)
"""
CLAIM_AND_RECORD = f"""
WITH claimed AS MATERIALIZED ({CLAIM_LOCK.rstrip()}
), claimable AS (
    SELECT b.i FROM unnest($2::text[], $3::int[], $4::bigint[]) WITH ORDINALITY
        AS b (topic, partition, start, i)
    JOIN claimed c
        ON c.topic = b.topic AND c.partition = b.partition AND c.next_offset = b.start
    WHERE (SELECT count(*) FROM claimed) = cardinality($2::text[])
), ids AS (
    SELECT e.event_id FROM unnest($5::uuid[], $6::bigint[]) AS e (event_id, i)
    WHERE e.i IN (SELECT i FROM claimable)
), recorded AS (
    INSERT INTO {{schema}}.applied_events (event_id) SELECT event_id FROM ids
    ON CONFLICT DO NOTHING RETURNING event_id
)
SELECT topic, partition, next_offset, NULL::uuid FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, event_id FROM ids WHERE event_id NOT IN (SELECT event_id FROM recorded)
"""
"""Claim a batch's positions and record the ids of its claimed partitions, in one round
trip. The ids are recorded only when every partition already has a stored position
(else :meth:`AppliedEvents.claim_new` stores them first and records after)."""
FORGET = """
DELETE FROM {schema}.applied_events WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.applied_events
    WHERE applied_at < now() - make_interval(secs => $1) LIMIT $2
))
"""
FORGET_CHUNK = 10_000  # rows per DELETE: short transactions beside the projector's own


async def create_applied_events(conn: asyncpg.Connection, schema: str) -> None:
    """Create the table (or bring one from before ``applied_at`` up to date)."""
    await conn.execute(CREATE.format(schema=schema))


async def record_new(conn: asyncpg.Connection, schema: str, ids: list[Any]) -> set[Any]:
    """Record ``ids`` as applied (in the caller's transaction); returns the new ones.

    One statement, which sends back only the ids applied before (usually none)."""
    if not ids:
        return set()
    seen = await conn.fetch(RECORD.format(schema=schema), ids)
    return set(ids).difference(row[0] for row in seen)


class AppliedEvents:
    """``schema``'s applied ids: which of a batch are new, and forgetting the old ones."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        *,
        window_s: float | None,
        check_every_s: float = 600.0,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.window_s = window_s
        self.check_every_s = check_every_s
        self.forgotten = 0
        self._next_check = time.monotonic() + min(check_every_s, window_s or check_every_s)
        self._forget = FORGET.format(schema=schema)
        self._claim_and_record = CLAIM_AND_RECORD.format(schema=schema)

    async def fresh(self, conn: asyncpg.Connection, ids: list[Any]) -> set[Any]:
        """The ids not applied before, recorded as applied now (in the batch's transaction)."""
        return await record_new(conn, self.schema, ids)

    async def claim_new(
        self,
        tx: asyncpg.Connection,
        positions: PositionStore,
        consumer: str,
        starts: Mapping[TopicPartition, int],
        ids: Sequence[tuple[Any, TopicPartition]],
    ) -> tuple[set[TopicPartition], dict[TopicPartition, int], set[Any]]:
        """``positions.claim`` and :meth:`fresh` for the ids (with their partitions) of the
        claimed partitions, in one statement: (claimed partitions, stored positions of the
        others, the ids not applied before, now recorded)."""
        tps = sorted(starts)
        index = {tp: i for i, tp in enumerate(tps, start=1)}
        rows = await tx.fetch(
            self._claim_and_record,
            consumer,
            [tp.topic for tp in tps],
            [tp.partition for tp in tps],
            [starts[tp] for tp in tps],
            [event_id for event_id, _ in ids],
            [index[tp] for _, tp in ids],
        )
        claims = [row[:3] for row in rows if row[0] is not None]
        if len(claims) < len(tps):  # a partition's first batch: store its position first
            claimed, others = await positions.claim(tx, consumer, starts)
            return claimed, others, await self.fresh(tx, [e for e, tp in ids if tp in claimed])
        claimed, others = split_claimed(claims, starts)
        seen = {row[3] for row in rows if row[0] is None}
        return claimed, others, {e for e, tp in ids if tp in claimed and e not in seen}

    async def forget_old(self) -> int:
        """Delete the ids applied longer ago than the window; returns how many."""
        if self.window_s is None:
            return 0
        total = 0
        while True:
            async with self.pool.acquire() as conn:
                status = await conn.execute(self._forget, self.window_s, FORGET_CHUNK)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < FORGET_CHUNK:
                break
        self.forgotten += total
        return total

    async def tick(self, logger: Any) -> None:
        """Forget old ids when due; a retriable failure is logged and tried next time."""
        now = time.monotonic()
        if self.window_s is None or now < self._next_check:
            return
        self._next_check = now + self.check_every_s
        try:
            forgotten = await self.forget_old()
        except Exception as exc:
            if not is_retriable(exc):
                raise
            logger.warning("projector.forget_applied_failed", error=str(exc))
            return
        if forgotten:
            logger.info("projector.forgot_applied", events=forgotten, window_s=self.window_s)
