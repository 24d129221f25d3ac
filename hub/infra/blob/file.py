"""A blob store in a local directory (the embedded default).

Writes go to a temporary file, are fsynced, then renamed into place, and the directory
is fsynced: an object is either whole and durable or absent, whatever the crash.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable
from pathlib import Path

import anyio

from hub.infra.blob.chunks import file_chunks
from hub.infra.files import fsync_dir, make_dirs, private_opener, write_atomic
from hub.infra.lifecycle import Lifecycle
from hub.infra.ports import StoredObject
from schemas.errors import InputError, NotFoundError, StoreError

__all__ = ["FileBlobStore"]


class _SourceError(Exception):
    def __init__(self, error: OSError) -> None:
        self.error = error


class FileBlobStore(Lifecycle):
    """``BlobStore`` over a directory tree."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    async def start(self) -> None:
        try:
            make_dirs(self.root)
        except OSError as exc:
            raise StoreError(f"cannot create the archive directory {self.root}: {exc}") from exc

    async def stop(self) -> None:
        return None

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not key or key.startswith("/") or not path.is_relative_to(self.root):
            raise InputError(f"invalid object key {key!r}", field="key")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> str:
        path = self._path(key)
        await anyio.to_thread.run_sync(self._write, path, data)
        return path.as_uri()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        try:
            make_dirs(path.parent)
            write_atomic(path, data)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}") from exc

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(chunks)}.tmp")
        digest = hashlib.sha256()
        size = 0
        source = aiter(chunks)
        try:
            await anyio.to_thread.run_sync(make_dirs, path.parent)
            async with await anyio.open_file(tmp, "wb", opener=private_opener) as f:
                while True:
                    try:
                        chunk = await anext(source)
                    except StopAsyncIteration:
                        break
                    except OSError as exc:  # the source's own error, not the store's
                        raise _SourceError(exc) from exc
                    digest.update(chunk)
                    size += len(chunk)
                    await f.write(chunk)
                await f.flush()
                await anyio.to_thread.run_sync(os.fsync, f.wrapped.fileno())
            await anyio.to_thread.run_sync(os.replace, tmp, path)
            await anyio.to_thread.run_sync(fsync_dir, path.parent)
        except _SourceError as wrapped:
            raise wrapped.error from wrapped.error.__cause__
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}") from exc
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.Path(tmp).unlink(missing_ok=True)
        return StoredObject(path.as_uri(), size, digest.hexdigest())

    async def put_file(
        self, key: str, path: Path, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        return await self.put_stream(key, file_chunks(path), content_type=content_type)

    async def presign(self, key: str, *, expires_s: int = 3600) -> str:
        return self.uri(key)  # a local file needs no signature

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await anyio.Path(path).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no object {key!r} in {self.url}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc

    async def exists(self, key: str) -> bool:
        return await anyio.Path(self._path(key)).is_file()

    async def list(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            base = self.root / prefix if prefix else self.root
            start = base if base.is_dir() else base.parent
            if not start.is_dir():
                return []
            keys = []
            for path in start.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
            return sorted(keys)

        return await anyio.to_thread.run_sync(walk)

    async def delete(self, key: str) -> None:
        await anyio.Path(self._path(key)).unlink(missing_ok=True)
