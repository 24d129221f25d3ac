"""The layout's rules, checked on every run: layers import only downward (import-linter's
contracts in pyproject.toml), no import cycle between any two of our modules, no module
over 450 lines, and SQL on ``hub.positions`` in exactly one module."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "projections", "consumers", "hub")
MAX_LINES = 450


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_import_linter_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is not installed (pip install -e '.[test]')"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_450_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_positions_sql_lives_in_one_module() -> None:
    """Queries on ``hub.positions`` only in the PositionStore adapter; its DDL is with the
    other ``hub.*`` tables in ``consumers/bookkeeping.py``."""
    query = re.compile(r"\b(FROM|INTO|UPDATE|JOIN)\s+hub\.positions\b")
    ddl = re.compile(r"\bCREATE TABLE IF NOT EXISTS hub\.positions\b")
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in _sources()}
    assert [name for name, text in sources.items() if query.search(text)] == [
        "consumers/positions.py"
    ]
    assert [name for name, text in sources.items() if ddl.search(text)] == [
        "consumers/bookkeeping.py"
    ]
