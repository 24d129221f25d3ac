"""``hub.memory``: what agents remember about a user across threads (the AI Agents seed's
user memory), as events on the log.

A fact is a key, a JSON value and an optional category, in the namespace
``("memories", user_id)``: the same items LangGraph's memory tools see through
``HubStore``. Every value a fact had is kept (``history``, ``as_of``) until the user's
memory is erased (``erase``: one event, after which nothing of it is in the read model).
The LLM call that finds facts in a conversation stays the caller's: ``extract_and_save``
takes any callable.
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.core.inputs import check_id
from hub.memory.items import ItemsClient, StoredItem
from schemas.errors import InputError

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["NAMESPACE", "Fact", "FactVersion", "MemoryClient", "format_for_prompt"]

NAMESPACE = "memories"
"""The first label of a user's namespace: ``("memories", user_id)``."""

Extractor = Callable[[Sequence[Any]], Any]
"""Finds facts in messages: returns ``{key: value}``, or ``(key, value[, category])``
tuples, or ``{"key", "value", "category"}`` dicts (or an awaitable of one of those)."""


@dataclass(frozen=True)
class Fact:
    user_id: str
    key: str
    value: Any
    category: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class FactVersion:
    """A value a fact had from ``at`` on; ``deleted`` when it was deleted then."""

    value: Any
    category: str | None
    at: datetime
    deleted: bool = False


def namespace_of(user_id: str) -> tuple[str, str]:
    return (NAMESPACE, check_id(user_id, "user_id"))


def _fact(user_id: str, item: StoredItem) -> Fact:
    """A fact from an item (one stored by another tool, with no ``value`` key: the whole
    item is its value)."""
    value = item.value.get("value") if "value" in item.value else item.value
    return Fact(
        user_id, item.key, value, item.value.get("category"), item.created_at, item.updated_at
    )


def format_for_prompt(facts: Iterable[Fact]) -> str:
    """Facts as lines for a system prompt, grouped by category (uncategorised first)."""
    groups: dict[str | None, list[Fact]] = {}
    for fact in facts:
        groups.setdefault(fact.category, []).append(fact)
    lines: list[str] = []
    for category in sorted(groups, key=lambda c: (c is not None, c or "")):
        if category is not None:
            lines.append(f"{category}:")
        indent = "  " if category is not None else ""
        for fact in sorted(groups[category], key=lambda f: f.key):
            value = fact.value if isinstance(fact.value, str) else repr(fact.value)
            lines.append(f"{indent}- {fact.key}: {value}")
    return "\n".join(lines)


class MemoryClient:
    """Users' facts, remembered across threads, as ``hub.memory``."""

    def __init__(self, ctx: HubContext) -> None:
        self.items = ItemsClient(ctx)
        """Items in any namespace (what ``HubStore`` stores)."""

    async def set(self, user_id: str, key: str, value: Any, *, category: str | None = None) -> None:
        """Remember ``value`` (any JSON value) as the user's fact ``key``."""
        if category is not None and (not isinstance(category, str) or not category.strip()):
            raise InputError("category: a non-empty string, or None", field="category")
        await self.items.put(namespace_of(user_id), key, {"value": value, "category": category})

    async def get(self, user_id: str, key: str) -> Fact | None:
        item = await self.items.get(namespace_of(user_id), key)
        return None if item is None else _fact(user_id, item)

    async def get_all(self, user_id: str, *, category: str | None = None) -> builtins.list[Fact]:
        """The user's facts (of one category if given), by key."""
        contains = {"category": category} if category is not None else None
        items = await self.items.search(namespace_of(user_id), contains=contains, limit=None)
        return sorted((_fact(user_id, i) for i in items), key=lambda f: f.key)

    async def delete(self, user_id: str, key: str) -> None:
        await self.items.delete(namespace_of(user_id), key)

    async def erase(self, user_id: str) -> None:
        """Forget everything about the user: every fact and its history."""
        await self.items.erase(namespace_of(user_id))

    async def history(self, user_id: str, key: str) -> builtins.list[FactVersion]:
        """Every value the fact had, oldest first."""
        versions = await self.items.history(namespace_of(user_id), key)
        return [
            FactVersion(None, None, v.at, deleted=True)
            if v.value is None
            else FactVersion(v.value.get("value"), v.value.get("category"), v.at)
            for v in versions
        ]

    async def as_of(self, user_id: str, at: datetime) -> builtins.list[Fact]:
        """The user's facts as they were at ``at``."""
        found = await self.items.as_of(namespace_of(user_id), at)
        return [
            Fact(user_id, key, value.get("value"), value.get("category"), since, since)
            for key, value, since in found
        ]

    @staticmethod
    def format_for_prompt(facts: Iterable[Fact]) -> str:
        """Facts as lines for a system prompt (see :func:`format_for_prompt`)."""
        return format_for_prompt(facts)

    async def extract_and_save(
        self, user_id: str, messages: Sequence[Any], *, extractor: Extractor
    ) -> builtins.list[Fact]:
        """Run ``extractor(messages)`` (the caller's LLM call) and remember what it found;
        returns the facts saved."""
        found = extractor(messages)
        if inspect.isawaitable(found):
            found = await found
        saved = []
        for key, value, category in _facts_from(found):
            await self.set(user_id, key, value, category=category)
            fact = await self.get(user_id, key)
            if fact is not None:
                saved.append(fact)
        return saved


def _facts_from(found: Any) -> builtins.list[tuple[str, Any, str | None]]:
    if found is None:
        return []
    if isinstance(found, Mapping):
        return [(str(k), v, None) for k, v in found.items()]
    out: builtins.list[tuple[str, Any, str | None]] = []
    for i, entry in enumerate(found):
        if isinstance(entry, Mapping) and "key" in entry and "value" in entry:
            out.append((entry["key"], entry["value"], entry.get("category")))
        elif isinstance(entry, tuple | list) and len(entry) in (2, 3):
            out.append((entry[0], entry[1], entry[2] if len(entry) == 3 else None))
        else:
            raise InputError(
                f"extractor result {i}: expected (key, value[, category]) or "
                f"{{'key', 'value', 'category'}}, got {entry!r}",
                field=f"extractor.{i}",
            )
    return out
