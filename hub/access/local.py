"""The local admin key: ``agent-hub up`` on a loopback address makes one on first start
and keeps it in ``<home>/api_key``, readable only by its owner, so the local SDK and CLI
can call the local server with no setup."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hub.infra.files import make_dirs, write_atomic

__all__ = ["LOCAL_KEY_FILE", "is_loopback", "read_local_key", "write_local_key"]

LOCAL_KEY_FILE = "api_key"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to listen on or call) is this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def read_local_key(home: Path) -> str | None:
    """The local admin key kept under ``home``, if there is one."""
    try:
        return (home / LOCAL_KEY_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_local_key(home: Path, token: str) -> Path:
    """Keep ``token`` as the local admin key (owner-only); returns the file."""
    make_dirs(home)
    path = home / LOCAL_KEY_FILE
    write_atomic(path, (token + "\n").encode())
    return path
