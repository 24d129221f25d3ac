"""A blob store on S3 (AWS, MinIO, or moto in tests) through aioboto3.

A PUT is atomic: an object is whole or absent. The bucket is created at start if missing
(convenient for MinIO); where that is not allowed it must exist already.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterable, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import aioboto3
import anyio
import anyio.abc
from botocore.exceptions import BotoCoreError, ClientError

from hub.infra.blob.chunks import HashingReader, file_chunks, file_sha256
from hub.infra.lifecycle import Lifecycle
from hub.infra.ports import StoredObject
from schemas.errors import HubError, NotFoundError, StoreError, first_error

__all__ = ["S3BlobStore"]

T = TypeVar("T")

PART_SIZE = 8 << 20
"""Multipart upload part size (S3 needs at least 5 MiB for every part but the last)."""
SINGLE_PUT_MAX = 1 << 30
"""Files up to this size go up in one streamed PUT (S3 allows 5 GiB); larger ones in parts."""
PARALLEL_PARTS = 3
"""Parts uploaded at once: throughput without holding more than a few parts in memory."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def _s3(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run an S3 call, converting botocore errors into hub errors (the boundary)."""
    try:
        return await call()
    except HubError:
        raise
    except ClientError as exc:
        code = _code(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NotFoundError(f"{what}: not found") from exc
        retriable = code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")
        raise StoreError(f"{what}: {code or exc}", retriable=retriable) from exc
    except (BotoCoreError, OSError) as exc:
        raise StoreError(f"{what}: {exc}", retriable=True) from exc


class S3BlobStore(Lifecycle):
    """``BlobStore`` over one bucket and key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._session: aioboto3.Session | None = None

    async def start(self) -> None:
        if self._client is not None:
            return
        stack = AsyncExitStack()
        if self._session is None:  # one per store: a restart (a retry) reuses its models
            self._session = aioboto3.Session()
        session = self._session
        try:
            self._client = await stack.enter_async_context(
                session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)
            )
            await self._ensure_bucket()
        except BaseException:
            self._client = None
            await stack.aclose()
            raise
        self._stack = stack

    async def _ensure_bucket(self) -> None:
        where = f"S3 bucket {self.bucket}" + (
            f" at {self.endpoint_url}" if self.endpoint_url else ""
        )
        try:
            await _s3(f"cannot reach {where}", lambda: self._client.head_bucket(Bucket=self.bucket))
        except (NotFoundError, StoreError):
            await _s3(
                f"cannot create {where}", lambda: self._client.create_bucket(Bucket=self.bucket)
            )

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            await stack.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StoreError("the S3 store is not started", retriable=False)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> str:
        full = self._key(key)
        await _s3(
            f"cannot write s3://{self.bucket}/{full}",
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=content_type
            ),
        )
        return self.uri(key)

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Upload in parts of ``PART_SIZE``, ``PARALLEL_PARTS`` at a time (one PUT when
        smaller than a part); memory stays within a few parts whatever the size. A failure
        aborts the multipart upload, so no object and no parts are left behind."""
        full = self._key(key)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload: _MultipartUpload | None = None
        try:
            async with anyio.create_task_group() as tg:
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    if not buffer and len(chunk) == PART_SIZE:
                        pieces = [chunk]  # the common case: no copy
                    else:
                        buffer += chunk
                        pieces = []
                        while len(buffer) >= PART_SIZE:
                            pieces.append(bytes(buffer[:PART_SIZE]))
                            del buffer[:PART_SIZE]
                    for piece in pieces:
                        if upload is None:
                            upload = await _MultipartUpload.create(self, full, content_type)
                        await upload.send(tg, piece)
                if upload is not None and buffer:
                    await upload.send(tg, bytes(buffer))
            if upload is None:
                await self.put(key, bytes(buffer), content_type=content_type)
            else:
                await upload.complete()
        except BaseException as exc:
            if upload is not None:
                await upload.abort()
            inner = first_error(exc)
            if inner is not exc:
                raise inner from None
            raise
        return StoredObject(self.uri(key), size, digest.hexdigest())

    async def put_file(
        self, key: str, path: Path, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """One PUT streamed from the file (after hashing it) up to ``SINGLE_PUT_MAX``: as
        fast as a raw put_object and as flat in memory as multipart; multipart above."""
        size = (await anyio.Path(path).stat()).st_size
        if size > SINGLE_PUT_MAX:
            return await self.put_stream(key, file_chunks(path), content_type=content_type)
        full = self._key(key)
        sha256 = ""

        async def send() -> None:
            nonlocal sha256
            # hashed while it is read for the upload: one pass over the file
            with HashingReader(open(path, "rb")) as body:  # noqa: ASYNC230 (streamed)
                await self.client.put_object(
                    Bucket=self.bucket,
                    Key=full,
                    Body=body,
                    ContentLength=size,
                    ContentType=content_type,
                )
                if body.hashed != size:  # not read whole (cannot happen after a 200)
                    sha256 = await anyio.to_thread.run_sync(file_sha256, path)
                else:
                    sha256 = body.sha256()

        await _s3(f"cannot write s3://{self.bucket}/{full}", send)
        return StoredObject(self.uri(key), size, sha256)

    async def presign(self, key: str, *, expires_s: int = 3600) -> str:
        full = self._key(key)
        url: str = await _s3(
            f"cannot presign s3://{self.bucket}/{full}",
            lambda: self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=expires_s
            ),
        )
        return url

    async def get(self, key: str) -> bytes:
        full = self._key(key)

        async def read() -> bytes:
            response = await self.client.get_object(Bucket=self.bucket, Key=full)
            async with response["Body"] as body:
                data: bytes = await body.read()
            return data

        return await _s3(f"cannot read s3://{self.bucket}/{full}", read)

    async def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            await _s3(
                f"cannot check s3://{self.bucket}/{full}",
                lambda: self.client.head_object(Bucket=self.bucket, Key=full),
            )
        except NotFoundError:
            return False
        return True

    async def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0

        async def collect() -> list[str]:
            keys: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys += [item["Key"][strip:] for item in page.get("Contents", ())]
            return sorted(keys)

        return await _s3(f"cannot list s3://{self.bucket}/{full}", collect)

    async def delete(self, key: str) -> None:
        full = self._key(key)
        await _s3(
            f"cannot delete s3://{self.bucket}/{full}",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=full),
        )


class _MultipartUpload:
    """One S3 multipart upload: parts sent concurrently (at most ``PARALLEL_PARTS``)."""

    def __init__(self, store: S3BlobStore, key: str, upload_id: str) -> None:
        self.store = store
        self.key = key
        self.upload_id = upload_id
        self.where = f"cannot write s3://{store.bucket}/{key}"
        self.parts: dict[int, str] = {}
        self._slots = anyio.Semaphore(PARALLEL_PARTS)
        self._next = 1

    @classmethod
    async def create(cls, store: S3BlobStore, key: str, content_type: str) -> _MultipartUpload:
        created = await _s3(
            f"cannot write s3://{store.bucket}/{key}",
            lambda: store.client.create_multipart_upload(
                Bucket=store.bucket, Key=key, ContentType=content_type
            ),
        )
        return cls(store, key, str(created["UploadId"]))

    async def send(self, tg: anyio.abc.TaskGroup, data: bytes) -> None:
        """Start uploading the next part (waits while ``PARALLEL_PARTS`` are in flight)."""
        number, self._next = self._next, self._next + 1
        await self._slots.acquire()
        tg.start_soon(self._upload, number, data)

    async def _upload(self, number: int, data: bytes) -> None:
        try:
            s = self.store
            sent = await _s3(
                self.where,
                lambda: s.client.upload_part(
                    Bucket=s.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=data,
                ),
            )
            self.parts[number] = str(sent["ETag"])
        finally:
            self._slots.release()

    async def complete(self) -> None:
        s = self.store
        parts = [{"ETag": self.parts[n], "PartNumber": n} for n in sorted(self.parts)]
        await _s3(
            self.where,
            lambda: s.client.complete_multipart_upload(
                Bucket=s.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            ),
        )

    async def abort(self) -> None:
        s = self.store
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await s.client.abort_multipart_upload(
                Bucket=s.bucket, Key=self.key, UploadId=self.upload_id
            )
