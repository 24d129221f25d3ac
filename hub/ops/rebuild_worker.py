"""A helper process of a parallel rebuild: ``python -m hub.ops.rebuild_worker NAME TARGETS``.

It joins the shadow projector's consumer group next to the rebuild's own process, so
the partitions are shared out among them, and runs until every partition has reached
``TARGETS`` (JSON: ``[[topic, partition, offset], ...]``). Positions live in Postgres,
so what each process applies is applied exactly once whoever does it, and a worker that
dies hands its partitions back to the others. Settings come from the environment
(``HUB_*``), as for ``agent-hub``. The last line on stdout is ``events=N``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import anyio

from hub.infra.ports import TopicPartition

__all__ = ["main", "parse_targets", "worker_targets"]


def worker_targets(targets: dict[TopicPartition, int]) -> str:
    """``targets`` as the worker's command-line argument."""
    return json.dumps([[tp.topic, tp.partition, offset] for tp, offset in targets.items()])


def parse_targets(text: str) -> dict[TopicPartition, int]:
    """The inverse of :func:`worker_targets`."""
    return {TopicPartition(str(t), int(p)): int(o) for t, p, o in json.loads(text)}


async def _run(name: str, targets: dict[TopicPartition, int]) -> int:
    from hub.ops.replay import find_projection, run_until_caught_up
    from hub.ops.shadow import shadow_of
    from hub.runtime import Runtime
    from hub.settings import load_settings

    async with Runtime(load_settings(run_projectors="never")) as runtime:
        shadow = shadow_of(find_projection(runtime, name))
        projector = runtime.projector(shadow)
        await run_until_caught_up(runtime, projector, sorted(targets), targets=targets)
        return projector.stats.events


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exits 1 with one line on stderr if the work cannot be done."""
    from hub.infra.logs import configure_logging
    from hub.infra.tuning import tune_gc
    from hub.settings import load_settings
    from schemas.errors import HubError

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m hub.ops.rebuild_worker NAME TARGETS_JSON", file=sys.stderr)
        return 2
    name, targets = args[0], parse_targets(args[1])
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    tune_gc()
    try:
        events = anyio.run(_run, name, targets)
    except HubError as exc:
        print(f"rebuild worker: error: {exc}", file=sys.stderr)
        return 1
    print(f"events={events}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
