"""Durable local files: write whole-or-nothing, and make a rename survive a crash."""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["fsync_dir", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable_name: bool = True) -> None:
    """Write ``data`` to a temporary file, fsync it and rename it over ``path``: readers
    see the old file or the new one, never part of it. With ``durable_name`` the directory
    is fsynced too, so the rename itself survives a crash. Raises ``OSError``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable_name:
        fsync_dir(path.parent)
