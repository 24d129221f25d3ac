"""What the compiled Avro reader and writer share: building one Python function from
lines (:class:`FunctionWriter`)."""

from __future__ import annotations

from typing import Any

__all__ = ["FunctionWriter", "Unsupported"]


class Unsupported(Exception):
    """A schema the compiled reader or writer does not handle (fastavro does instead)."""


class FunctionWriter:
    """The lines of one function, its fresh local variables and its constants; also the
    named types seen so far, and the records being written out (recursion is refused)."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}  # full name -> its schema
        self.expanding: set[str] = set()
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.count = 0

    def var(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def constant(self, value: Any) -> str:
        name = f"C{len(self.constants)}"
        self.constants[name] = value
        return name

    def build(self, name: str, helpers: dict[str, Any], where: str) -> Any:
        """The function ``name`` defined by the lines, with ``helpers`` in its globals."""
        namespace = {**helpers, **self.constants}
        exec(compile("\n".join(self.lines), where, "exec"), namespace)
        return namespace[name]
