"""``HubCheckpointSaver`` passes LangGraph's own conformance suite
(``langgraph-checkpoint-conformance``), base and every extended capability, on both logs.
Each capability suite gets a fresh saver on a hub of its own tenant."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

from hub import Hub
from hub.integrations.langgraph import HubCheckpointSaver
from hub.settings import HubSettings

pytestmark = pytest.mark.anyio


async def test_langgraph_conformance(hub_settings: HubSettings, backend: str) -> None:
    settings = hub_settings.model_copy(update={"run_projectors": "always"})
    tenants = itertools.count()

    async def saver() -> AsyncIterator[HubCheckpointSaver]:
        tenant = f"conformance-{next(tenants)}"
        async with Hub(settings.model_copy(update={"tenant": tenant})) as hub:
            yield HubCheckpointSaver(hub)

    registered = checkpointer_test(name=f"HubCheckpointSaver ({backend} log)")(saver)
    report = await validate(registered)
    report.print_report()  # shown with -s, and in the CI log on failure
    for capability, result in sorted(report.results.items()):
        print(f"{capability}: {result.tests_passed} passed, {result.tests_failed} failed")
    failures = {cap: r.failures for cap, r in report.results.items() if r.failures}
    assert not failures, failures
    for capability in BASE_CAPABILITIES | EXTENDED_CAPABILITIES:
        result = report.results[capability.value]
        assert result.detected and result.passed, (capability, result)
        assert result.tests_passed > 0 and result.tests_failed == 0, (capability, result)
    assert report.passed_all()
