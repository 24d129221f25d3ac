"""Loads the ``.avsc`` contracts and every released version of them.

Layout of a schema directory::

    <Name>.avsc                 the current version of each event
    history/<Name>.v<N>.avsc    every earlier released version (N = 1, 2, ...)
    versions.lock.json          {name: [fingerprint hex of v1, v2, ...]}: what was released

Data written with any released version stays decodable: a record names its writer schema
by fingerprint, and the registry knows every released fingerprint. Changing a contract
means copying the current file to ``history/`` and running ``agent-hub schemas release``,
which refuses a change that is not fully compatible with every earlier version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from schemas import compat
from schemas.errors import SchemaError
from schemas.fingerprint import crc64_avro

__all__ = ["SchemaRegistry", "SchemaVersion", "default_schema_dir"]

_HISTORY_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>\d+)\.avsc$")
LOCK_FILE = "versions.lock.json"


def default_schema_dir() -> Path:
    """The ``avro`` directory shipped inside the ``schemas`` package."""
    return Path(__file__).resolve().parent / "avro"


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one event's schema."""

    name: str
    version: int
    fingerprint: int
    schema: dict[str, Any] = field(repr=False)
    parsed: Any = field(repr=False, compare=False)
    canonical: str = field(repr=False)

    @property
    def fingerprint_hex(self) -> str:
        """Hex of the fingerprint's little-endian bytes, as Avro's Java and fastavro print it."""
        return self.fingerprint.to_bytes(8, "little").hex()

    @classmethod
    def load(cls, path: Path, name: str, version: int) -> SchemaVersion:
        try:
            schema = json.loads(path.read_text())
            parsed = parse_schema(schema)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SchemaError(f"cannot load {path}: {exc}", event=name) from exc
        if schema.get("name") != name:
            raise SchemaError(
                f"{path} defines record {schema.get('name')!r}, expected {name!r}", event=name
            )
        canonical = to_parsing_canonical_form(parsed)
        return cls(name, version, crc64_avro(canonical.encode()), schema, parsed, canonical)


class SchemaRegistry:
    """Every event schema, current and released, by name and by fingerprint."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_schema_dir()
        self._history: dict[str, list[SchemaVersion]] = {}
        self._current: dict[str, SchemaVersion] = {}
        self._by_fingerprint: dict[int, SchemaVersion] = {}
        self._lock: dict[str, list[str]] = {}
        self._load()

    def _load(self) -> None:
        history_dir = self.directory / "history"
        if history_dir.is_dir():
            for path in sorted(history_dir.glob("*.avsc")):
                m = _HISTORY_NAME.match(path.name)
                if not m:
                    raise SchemaError(f"{path}: history files are named <Name>.v<N>.avsc")
                name, version = m["name"], int(m["version"])
                self._history.setdefault(name, []).append(SchemaVersion.load(path, name, version))
        for versions in self._history.values():
            versions.sort(key=lambda v: v.version)
        for path in sorted(self.directory.glob("*.avsc")):
            name = path.stem
            version = len(self._history.get(name, ())) + 1
            self._current[name] = SchemaVersion.load(path, name, version)
        for sv in self.all_versions():
            self._by_fingerprint.setdefault(sv.fingerprint, sv)
        lock = self.directory / LOCK_FILE
        if lock.exists():
            self._lock = json.loads(lock.read_text())

    # ── lookups ─────────────────────────────────────────────────────────────────────────

    @property
    def names(self) -> list[str]:
        return sorted(self._current)

    def current(self, name: str) -> SchemaVersion:
        try:
            return self._current[name]
        except KeyError:
            raise SchemaError(f"no schema for event type {name!r}", event=name) from None

    def by_fingerprint(self, fingerprint: int) -> SchemaVersion | None:
        return self._by_fingerprint.get(fingerprint)

    def history(self, name: str) -> list[SchemaVersion]:
        """Released versions before the current one, oldest first."""
        return list(self._history.get(name, ()))

    def all_versions(self) -> Iterator[SchemaVersion]:
        for versions in self._history.values():
            yield from versions
        yield from self._current.values()

    # ── governance ──────────────────────────────────────────────────────────────────────

    def problems(self, mode: compat.Mode = "full") -> list[str]:
        """Everything wrong with the contracts: incompatible changes, unreleased edits."""
        found: list[str] = []
        for name in sorted(set(self._history) - set(self._current)):
            found.append(f"{name}: history exists but {name}.avsc is gone")
        for name, current in sorted(self._current.items()):
            older = self.history(name)
            olds = [v.schema for v in older]
            found += [f"{name}: {p}" for p in compat.check(current.schema, olds, mode)]
            known = {v.fingerprint_hex for v in [*older, current]}
            released = self._lock.get(name, [])
            for i, fp in enumerate(released, start=1):
                if fp not in known:
                    found.append(
                        f"{name}: released v{i} ({fp}) is missing; copy the previous schema to "
                        f"history/{name}.v{i}.avsc before changing it"
                    )
            if current.fingerprint_hex not in released:
                found.append(
                    f"{name}: current schema ({current.fingerprint_hex}) is not released; "
                    "run `agent-hub schemas release`"
                )
        return found

    def release(self, mode: compat.Mode = "full") -> list[str]:
        """Record every compatible, unreleased current schema in the lock file.

        Returns the names released. Raises ``SchemaError`` listing any incompatibility.
        """
        incompatible = [
            f"{name}: {p}"
            for name, current in sorted(self._current.items())
            for p in compat.check(current.schema, [v.schema for v in self.history(name)], mode)
        ]
        if incompatible:
            raise SchemaError("incompatible schema changes:\n  " + "\n  ".join(incompatible))
        released = []
        for name, current in sorted(self._current.items()):
            fps = self._lock.setdefault(name, [])
            if current.fingerprint_hex not in fps:
                fps.append(current.fingerprint_hex)
                released.append(name)
        text = json.dumps(self._lock, indent=2, sort_keys=True) + "\n"
        (self.directory / LOCK_FILE).write_text(text)
        return released
