"""The event models and the .avsc files cannot drift apart."""

from __future__ import annotations

import json

import pytest

from schemas.derive import drift
from schemas.events import EVENT_TYPES, AgentRetired, Topic
from schemas.registry import SchemaRegistry, default_schema_dir

ENVELOPE = ["event_id", "occurred_at", "tenant_id", "actor", "correlation_id"]


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry()


def test_every_avsc_has_a_model_and_every_model_an_avsc(registry: SchemaRegistry) -> None:
    assert sorted(EVENT_TYPES) == registry.names
    assert len(registry.names) == 31


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_model_matches_avsc(registry: SchemaRegistry, name: str) -> None:
    assert drift(EVENT_TYPES[name], registry.current(name).schema) == []


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_event_carries_the_envelope_first(registry: SchemaRegistry, name: str) -> None:
    schema = registry.current(name).schema
    assert schema["namespace"] == "agenthub.events.v1"
    assert [f["name"] for f in schema["fields"][:5]] == ENVELOPE


def test_every_topic_has_events() -> None:
    assert {cls.topic for cls in EVENT_TYPES.values()} == set(Topic)


def test_drift_is_detected_for_a_changed_model(registry: SchemaRegistry) -> None:
    class AgentRetiredWithExtra(AgentRetired):
        severity: int = 0

    AgentRetiredWithExtra.__name__ = "AgentRetired"
    problems = drift(AgentRetiredWithExtra, registry.current("AgentRetired").schema)
    assert problems and "severity" in problems[0]


def test_drift_is_detected_for_a_changed_avsc(registry: SchemaRegistry) -> None:
    schema = json.loads((default_schema_dir() / "AgentRetired.avsc").read_text())
    schema["fields"][-1]["default"] = "retired"
    problems = drift(AgentRetired, schema)
    assert problems == [
        "AgentRetired.reason: default is None in the model but 'retired' in the .avsc"
    ]


def test_released_versions_are_consistent(registry: SchemaRegistry) -> None:
    assert registry.problems() == []
