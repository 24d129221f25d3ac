"""Argument types shared by the command line's modules: bad values are usage errors."""

from __future__ import annotations

import argparse
import os

__all__ = ["non_negative_seconds", "positive_int", "workers"]


def non_negative_seconds(value: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"use a number of seconds (0 or more), not {value!r}")
    return seconds


def positive_int(value: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"use a whole number of 1 or more, not {value!r}")
    return number


def workers(value: str) -> int:
    """An argparse type: a number of processes, or ``auto`` (one per CPU core)."""
    if value == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"use a number of processes (1 or more) or auto, not {value!r}"
        )
    return count
