"""Process tuning for the long-running and bulk commands of ``agent-hub``."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GC_THRESHOLDS", "gc_tuned", "tune_gc"]

GC_THRESHOLDS = (50_000, 20, 100)
"""Young-generation collections every 50,000 allocations instead of 700."""


def tune_gc() -> None:
    """Fewer cyclic garbage collections in a process that streams events.

    A projector allocates millions of short-lived objects (records, decoded events, rows)
    that reference counting frees on its own; with the default thresholds the cyclic
    collector still walks the young generation every 700 allocations, which cost a
    rebuild about a third of its time. What is loaded at start-up is frozen out of the
    collector's scans. Only the ``agent-hub`` command calls this: an application that
    embeds the SDK keeps its own settings.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def gc_tuned() -> Iterator[None]:
    """:func:`tune_gc` for a block, the collector's settings restored after it (how the
    benchmarks run a projector or an archiver in their own process as ``agent-hub`` would)."""
    thresholds = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
