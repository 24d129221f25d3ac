"""Reading local files in bounded chunks, for uploads that never hold a whole file."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

__all__ = ["CHUNK_SIZE", "HashingReader", "file_chunks", "file_sha256"]

CHUNK_SIZE = 8 << 20


async def file_chunks(path: Path, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """The file's bytes, ``size`` at a time."""
    async with await anyio.open_file(path, "rb") as f:
        while chunk := await f.read(size):
            yield chunk


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (hex), read in chunks (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


class HashingReader(io.BufferedIOBase):
    """A read-only file that hashes its bytes the first time they are read, in order.

    An HTTP client may read a body twice (once to sign it, once to send it, seeking back
    in between); each byte is hashed once, so one pass over the file gives both the
    upload and its SHA-256. ``sha256()`` is only valid once the whole file was read.
    """

    def __init__(self, raw: io.BufferedReader) -> None:
        super().__init__()
        self._raw = raw
        self._digest = hashlib.sha256()
        self._hashed = 0

    def read(self, size: int | None = -1, /) -> bytes:
        start = self._raw.tell()
        data = self._raw.read(size)
        if start <= self._hashed < start + len(data):
            self._digest.update(memoryview(data)[self._hashed - start :])
            self._hashed = start + len(data)
        return data

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()

    @property
    def hashed(self) -> int:
        """How many bytes from the start have been hashed."""
        return self._hashed

    def sha256(self) -> str:
        return self._digest.hexdigest()
