"""The compatibility checker rejects backward- or forward-incompatible changes."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from schemas.compat import check
from schemas.errors import SchemaError
from schemas.registry import SchemaRegistry, default_schema_dir


def load(name: str) -> dict[str, Any]:
    return json.loads((default_schema_dir() / f"{name}.avsc").read_text())  # type: ignore[no-any-return]


def changed(name: str, fn: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    old = load(name)
    new = copy.deepcopy(old)
    fn(new)
    return old, new


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_identical_is_compatible() -> None:
    assert check(load("MessageAppended"), [load("MessageAppended")]) == []


def test_removing_a_required_field_is_rejected() -> None:
    old, new = changed("AgentRegistered", lambda s: s["fields"].remove(field(s, "agent_id")))
    assert check(new, [old]) == [
        "v1 readers cannot read new data: agent_id: field removed although it has no default"
    ]
    assert check(new, [old], mode="backward") == []  # a pure reader-side check allows it


def test_adding_a_field_without_default_is_rejected() -> None:
    old, new = changed(
        "AgentRegistered", lambda s: s["fields"].append({"name": "owner", "type": "string"})
    )
    assert check(new, [old]) == [
        "new schema cannot read v1 data: owner: field added without a default"
    ]


def test_adding_a_field_with_default_is_accepted() -> None:
    old, new = changed(
        "AgentRegistered",
        lambda s: s["fields"].append(
            {"name": "owner", "type": ["null", "string"], "default": None}
        ),
    )
    assert check(new, [old]) == []


def test_changing_a_type_is_rejected() -> None:
    old, new = changed("MetricRecorded", lambda s: field(s, "value").update(type="string"))
    problems = check(new, [old])
    assert "new schema cannot read v1 data: value: type changed from double to string" in problems


def test_changing_a_logical_type_is_rejected() -> None:
    def to_millis(s: dict[str, Any]) -> None:
        field(s, "occurred_at")["type"]["logicalType"] = "timestamp-millis"

    old, new = changed("AgentRetired", to_millis)
    assert check(new, [old])


def test_nested_record_changes_are_found() -> None:
    def drop_usage_field(s: dict[str, Any]) -> None:
        usage = field(s, "usage")["type"][1]
        usage["fields"] = [f for f in usage["fields"] if f["name"] != "total_tokens"]
        usage["fields"].append({"name": "cost", "type": "double"})

    old, new = changed("RunFinished", drop_usage_field)
    assert check(new, [old]) == [
        "new schema cannot read v1 data: usage.cost: field added without a default"
    ]


def test_enum_symbol_removal_is_rejected() -> None:
    def drop(s: dict[str, Any]) -> None:
        field(s, "role")["type"]["symbols"].remove("tool")

    old, new = changed("MessageAppended", drop)
    assert any("enum symbols ['tool'] removed" in p for p in check(new, [old]))


def test_every_old_version_is_checked() -> None:
    v1 = load("AgentRetired")
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "note", "type": "string", "default": ""})
    v3 = copy.deepcopy(v2)
    field(v3, "note").pop("default")  # compatible with nothing that lacks it
    assert check(v3, [v1, v2]) == [
        "new schema cannot read v1 data: note: field added without a default"
    ]


def test_release_refuses_incompatible_changes(tmp_path: Path) -> None:
    directory = tmp_path / "avro"
    shutil.copytree(default_schema_dir(), directory)
    original = load("AgentRetired")
    (directory / "history").mkdir(exist_ok=True)
    (directory / "history" / "AgentRetired.v1.avsc").write_text(json.dumps(original))
    broken = copy.deepcopy(original)
    broken["fields"].append({"name": "severity", "type": "int"})
    (directory / "AgentRetired.avsc").write_text(json.dumps(broken))
    registry = SchemaRegistry(directory)
    assert any("severity: field added without a default" in p for p in registry.problems())
    with pytest.raises(SchemaError, match="severity: field added without a default"):
        registry.release()


def test_editing_in_place_without_history_is_flagged(tmp_path: Path) -> None:
    directory = tmp_path / "avro"
    shutil.copytree(default_schema_dir(), directory)
    edited = load("AgentRetired")
    edited["fields"].append({"name": "note", "type": "string", "default": ""})
    (directory / "AgentRetired.avsc").write_text(json.dumps(edited))
    problems = SchemaRegistry(directory).problems()
    assert any("released v1" in p and "history/AgentRetired.v1.avsc" in p for p in problems)
    assert any("not released" in p for p in problems)


def test_compatible_change_is_released(tmp_path: Path) -> None:
    directory = tmp_path / "avro"
    shutil.copytree(default_schema_dir(), directory)
    original = load("AgentRetired")
    (directory / "history").mkdir(exist_ok=True)
    (directory / "history" / "AgentRetired.v1.avsc").write_text(json.dumps(original))
    grown = copy.deepcopy(original)
    grown["fields"].append({"name": "note", "type": "string", "default": ""})
    (directory / "AgentRetired.avsc").write_text(json.dumps(grown))
    assert SchemaRegistry(directory).release() == ["AgentRetired"]
    reloaded = SchemaRegistry(directory)
    assert reloaded.problems() == []
    assert reloaded.current("AgentRetired").version == 2
