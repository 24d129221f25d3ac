"""The newest checkpoint of each thread a saver wrote, kept to answer the read at the
start of LangGraph's next turn without waiting for the projection.

A turn ends with its checkpoints appended; the next one starts by reading the thread's
newest checkpoint. Read your writes means that read waits until the projection applied
those appends: about 12 ms on a busy process, longer than the turn's own work. The saver
knows the answer already: it wrote it. So it keeps, per thread and namespace, the newest
checkpoint as the projection will return it (its values at their versions and its
pending writes, merged as the projection merges them) and answers from it while its own
last write of the thread is not yet known to be applied, and for a second at most. Once
it is, the projection is asked whether anyone changed the thread since that write (one
indexed row, ``CheckpointsClient.changed_since``): if nobody did, the head still
answers; if someone did (another process), or it is not known, the checkpoint is read
back.

An entry is made only from a known starting point: the projection's newest (or no
checkpoint) read after waiting, then this saver's own writes. It is dropped when the
hub's last write of the thread is not the saver's own (another saver in this process
wrote it), and by every call that rewrites a thread (copy, delete, prune). As with
LangGraph's own savers, one thread has one writer at a time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from hub.checkpoints.client import Serialized, StoredCheckpoint, StoredWrite
from hub.infra.ports import TopicPartition

__all__ = ["Head", "Heads"]

Marks = dict[TopicPartition, int]
HEADS_KEPT = 1_000
"""Threads whose newest checkpoint a saver keeps (the least recently used go first)."""
MOST_BYTES = 1 << 20
"""A checkpoint larger than this (its values and writes) is read back, not kept."""
FRESH_S = 1.0
"""A head answers for this long after the saver's last write of its thread at most,
should the projection's progress go unheard (the position notifications missed)."""


@dataclass
class Head:
    """A thread's newest checkpoint in one namespace, as the projection will return it."""

    checkpoint: StoredCheckpoint | None  # None: the thread has none (yet)
    versions: dict[str, str] = field(default_factory=dict)  # channel -> version of its value
    mark: Marks = field(default_factory=dict)  # the hub's last write of the thread it saw
    early: dict[str, list[StoredWrite]] = field(default_factory=dict)  # writes of a newer
    # checkpoint whose own append finished later (LangGraph sends them concurrently)
    at: float = field(default_factory=time.monotonic)  # when it last saw a write

    @property
    def checkpoint_id(self) -> str | None:
        return None if self.checkpoint is None else self.checkpoint.checkpoint_id


class Heads:
    """Per ``(thread, namespace)``, the newest checkpoint known (see the module)."""

    def __init__(self, limit: int = HEADS_KEPT) -> None:
        self._heads: OrderedDict[tuple[str, str], Head] = OrderedDict()
        self._limit = limit

    def answer(
        self, thread: str, ns: str, mark: Marks | None, applied: bool, unchanged: bool = False
    ) -> Head | None:
        """The head to answer a read of the thread's newest with, if it may: the hub's
        last write of the thread (``mark``) is one the head saw, and either it is not
        known to be applied yet, or the projection says nobody changed the thread since
        (``unchanged``). Else the projection is read (see :meth:`holds`)."""
        head = self.holds(thread, ns, mark)
        if head is None:
            return None
        if not unchanged and (applied or time.monotonic() - head.at >= FRESH_S):
            return None
        self._heads.move_to_end((thread, ns))
        return head

    def holds(self, thread: str, ns: str, mark: Marks | None) -> Head | None:
        """The head kept of the thread if the hub's last write of it (``mark``) is one
        the head saw; once that write is applied, the head answers only if the thread
        was not changed since (else the projection is read back)."""
        head = self._heads.get((thread, ns))
        if head is None:
            return None
        if not mark or mark != head.mark:
            del self._heads[(thread, ns)]  # written by someone else since: read it back
            return None
        return head

    def seen(
        self,
        thread: str,
        ns: str,
        found: StoredCheckpoint | None,
        versions: Mapping[str, str],
        mark: Marks,
    ) -> None:
        """The thread's newest checkpoint (``versions``: its channel versions) as the
        projection returned it once ``mark``, the hub's last write of it, was applied."""
        self._keep((thread, ns), Head(found, dict(versions), mark))

    def saved(
        self,
        new: StoredCheckpoint,
        channel_versions: Mapping[str, str],
        values: Mapping[str, tuple[str, Serialized]],
        current: Callable[[str], Serialized | None],
        after: Marks | None,
    ) -> None:
        """This saver appended ``new`` (``values``: the channels it changed, by version;
        ``current(channel)``: any other channel's value now, serialized); ``after``: the
        hub's last write of the thread once it was appended."""
        key = (new.thread_id, new.checkpoint_ns)
        head = self._followed(key, after)
        if head is None:
            return
        newest = head.checkpoint_id
        if newest is not None and new.checkpoint_id <= newest:
            return  # an older checkpoint: the newest stays what it was
        kept: dict[str, Serialized] = {}
        for channel, version in channel_versions.items():
            value = _value_at(head, channel, version, values, current)
            if value is not None:
                kept[channel] = value
        early_writes = head.early.get(new.checkpoint_id, [])
        checkpoint = replace(new, values=kept, writes=_merged([], early_writes))
        early = {c: w for c, w in head.early.items() if c > new.checkpoint_id}
        self._keep(key, Head(checkpoint, dict(channel_versions), head.mark, early, head.at))

    def wrote(
        self,
        thread: str,
        ns: str,
        checkpoint_id: str,
        writes: list[StoredWrite],
        after: Marks | None,
    ) -> None:
        """This saver appended pending writes of a checkpoint; ``after`` as in
        :meth:`saved`."""
        head = self._followed((thread, ns), after)
        if head is None:
            return
        newest = head.checkpoint_id
        if head.checkpoint is not None and newest == checkpoint_id:
            head.checkpoint.writes[:] = _merged(head.checkpoint.writes, writes)
            self._keep((thread, ns), head)  # or dropped, grown too large
        elif newest is None or checkpoint_id > newest:
            head.early.setdefault(checkpoint_id, []).extend(writes)

    def forget(self, threads: Iterable[str] | None = None) -> None:
        """Drop the heads of ``threads`` (of every thread if ``None``)."""
        if threads is None:
            self._heads.clear()
            return
        gone = set(threads)
        for key in [k for k in self._heads if k[0] in gone]:
            del self._heads[key]

    def _followed(self, key: tuple[str, str], after: Marks | None) -> Head | None:
        """The head of ``key``, now also covering this saver's write that ended at
        ``after``; ``None`` (and forgotten) if there is none or the write's end is not
        known (spooled)."""
        head = self._heads.get(key)
        if head is None:
            return None
        if not after:
            del self._heads[key]
            return None
        head.mark = {tp: max(o, head.mark.get(tp, -1)) for tp, o in after.items()}
        head.at = time.monotonic()
        return head

    def _keep(self, key: tuple[str, str], head: Head) -> None:
        checkpoint = head.checkpoint
        if checkpoint is not None and _size(checkpoint.values.values(), checkpoint.writes) > (
            MOST_BYTES
        ):
            self._heads.pop(key, None)
            return
        self._heads[key] = head
        self._heads.move_to_end(key)
        while len(self._heads) > self._limit:
            self._heads.popitem(last=False)


def _merged(kept: list[StoredWrite], new: Iterable[StoredWrite]) -> list[StoredWrite]:
    """Pending writes merged as the projection merges them: per task and index the
    first stored, except a special channel's (negative index), where the last counts;
    in the order a framework applies them."""
    merged = {(w.task_id, w.idx): w for w in kept}
    for w in new:
        if w.idx < 0 or (w.task_id, w.idx) not in merged:
            merged[(w.task_id, w.idx)] = w
    return sorted(merged.values(), key=lambda w: (w.task_path, w.task_id, w.idx))


def _value_at(
    head: Head,
    channel: str,
    version: str,
    values: Mapping[str, tuple[str, Serialized]],
    current: Callable[[str], Serialized | None],
) -> Serialized | None:
    """A channel's value at ``version``: written now, kept from the head, or (the same
    version, so the same value) serialized again from the checkpoint's values."""
    if channel in values and values[channel][0] == version:
        return values[channel][1]
    if head.checkpoint is not None and head.versions.get(channel) == version:
        return head.checkpoint.values.get(channel)
    return current(channel)


def _size(values: Iterable[Serialized], writes: Iterable[StoredWrite]) -> int:
    return sum(len(v.data) for v in values) + sum(len(w.value.data) for w in writes)
