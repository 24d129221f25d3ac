"""Durable, private local files: write whole-or-nothing, make a rename survive a crash,
and create everything owner-only (files 0600, directories 0700): the local directory
holds conversations, archives and the local admin key."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "fsync_dir",
    "make_dirs",
    "private_opener",
    "write_atomic",
]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_dirs(path: Path) -> None:
    """``mkdir -p`` where every directory it creates is owner-only."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR)


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open` that creates files owner-only."""
    return os.open(path, flags, PRIVATE_FILE)


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
        with open(tmp, "wb", opener=private_opener) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable_name:
        fsync_dir(path.parent)
