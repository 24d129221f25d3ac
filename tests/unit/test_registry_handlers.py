"""The registry projection's pure parts, without Postgres: its handlers fold events into a
batch's per-agent changes and history rows, and ``fold_history`` (used by ``as_of``) folds
history rows the way the handlers fold events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from projections.registry.queries import fold_history
from projections.registry.tables import RegistryBatch, RegistryProjection, on_registered, on_updated
from schemas.events import AgentRegistered, AgentRetired, AgentUpdated

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Meta:
    topic: str = "agenthub.registry"
    partition: int = 0
    offset: int = 0
    timestamp_ms: int = 0


def _batch() -> RegistryBatch:
    return RegistryBatch(conn=None, schema="registry_test")


def _env(minutes: int) -> dict[str, Any]:
    return {"tenant_id": "t", "actor": "me", "occurred_at": T0 + timedelta(minutes=minutes)}


def test_the_handler_table_routes_every_registry_event() -> None:
    assert set(RegistryProjection.handlers) == {AgentRegistered, AgentUpdated, AgentRetired}


def test_register_then_update_folds_into_one_change_and_two_history_rows() -> None:
    batch = _batch()
    on_registered(
        batch,
        AgentRegistered(**_env(0), agent_id="a", description="v1", tags=("x",)),
        Meta(offset=0),
    )
    on_updated(
        batch,
        AgentUpdated(**_env(1), agent_id="a", description="v2", tags=("x", "y")),
        Meta(offset=1),
    )
    change = batch.changes[("t", "a")]
    assert (change.description, change.tags, change.status) == ("v2", ("x", "y"), "active")
    assert change.revision == 2
    assert change.registered_at == T0 and change.updated_at == T0 + timedelta(minutes=1)
    assert [(row[2], row[3], row[10]) for row in batch.history] == [
        ("registered", "v1", 0),
        ("updated", "v2", 1),
    ]


def _row(kind: str, minutes: int, **fields: Any) -> dict[str, Any]:
    base = {"description": None, "tags": None, "metadata": None, "reason": None}
    return base | {"kind": kind, "changed_at": T0 + timedelta(minutes=minutes)} | fields


def test_fold_history_as_the_handlers_fold() -> None:
    rows = [
        _row("registered", 0, description="v1", tags=["x"], metadata={}),
        _row("retired", 1, reason="old"),
        _row("registered", 2, description="v2", tags=[], metadata={"k": 1}),
    ]
    assert fold_history("a", rows[:2]) == {
        "agent_id": "a",
        "registered_at": T0,
        "description": "v1",
        "tags": ("x",),
        "metadata": {},
        "status": "retired",
        "retired_at": T0 + timedelta(minutes=1),
        "retired_reason": "old",
        "revision": 2,
        "updated_at": T0 + timedelta(minutes=1),
    }
    back = fold_history("a", rows)
    assert back is not None
    assert (back["status"], back["retired_at"], back["description"], back["revision"]) == (
        "active",
        None,
        "v2",
        3,
    )


def test_fold_history_of_an_agent_never_registered() -> None:
    assert fold_history("a", []) is None
    assert fold_history("a", [_row("retired", 0, reason="x")]) is None
