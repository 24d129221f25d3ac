"""Benchmarks: each ``python -m tests.bench.NAME`` prints our figures beside a baseline's."""

from __future__ import annotations

import argparse

__all__ = ["parser_with_backends"]


def parser_with_backends(doc: str | None, home: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser, with ``--backend kafka|postgres|both`` and ``--home``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["kafka", "postgres", "both"], default="both")
    parser.add_argument("--home", default=home)
    return parser
