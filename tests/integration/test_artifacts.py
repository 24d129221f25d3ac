"""Artifacts on the file store and on S3 (the moto server): streamed uploads (multipart on
S3), flat memory for large files, presigned downloads, and failed uploads leaving nothing."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from hub import Hub, InputError, StoreError
from hub.infra.blob.s3 import PARALLEL_PARTS, PART_SIZE
from hub.infra.ports import TopicPartition
from hub.runs.run import artifact_store_key
from hub.settings import HubSettings
from schemas.events import Topic
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.anyio


@pytest.fixture
async def hub(
    database_url: str, archive_url: str, s3_endpoint: str | None, tmp_path: Path
) -> AsyncIterator[Hub]:
    settings = HubSettings.model_validate(
        {
            "database_url": database_url,
            "home": tmp_path / "home",
            "partitions": TEST_PARTITIONS,
            "run_projectors": "always",
            "archive_url": archive_url,
            "s3_endpoint_url": s3_endpoint,
            "batch_linger_ms": 5,
        }
    )
    async with Hub.connect(settings) as h:
        yield h


def random_file(path: Path, halves: int) -> Path:
    """A file of ``halves`` half-parts of random bytes."""
    with open(path, "wb") as f:
        for _ in range(halves):
            f.write(os.urandom(PART_SIZE // 2))
    return path


async def download(url: str) -> bytes:
    if url.startswith("file://"):
        return await anyio.Path(urlsplit(url).path).read_bytes()
    async with httpx.AsyncClient() as client:  # a presigned URL needs no credentials
        response = await client.get(url)
        response.raise_for_status()
        return response.content


async def produced(hub: Hub) -> int:
    tps = [TopicPartition(str(Topic.RUNS), p) for p in range(TEST_PARTITIONS)]
    return sum((await hub.runtime.log.end_offsets(tps)).values())


async def test_bytes_files_and_streams_are_stored_and_downloadable(
    hub: Hub, tmp_path: Path
) -> None:
    big = random_file(tmp_path / "frames.bin", 5)  # over two parts: S3 uploads it in three

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"line {i}\n".encode()

    async with hub.runs.start("motion", run_id="motion-1") as run:
        small = await run.store_artifact("result.json", b'{"ok": true}', meta={"frames": 3})
        large = await run.store_artifact("frames.bin", big)
        streamed = await run.store_artifact("log.txt", chunks(), content_type="text/plain")
        with open(big, "rb") as handle:  # noqa: ASYNC230 (a binary file is what is tested)
            from_handle = await run.store_artifact("copy.bin", handle)

    assert small.content_type == "application/json" and small.metadata == {"frames": 3}
    assert small.key.startswith("motion/motion-1/") and small.key.endswith("/result.json")
    assert large.size == big.stat().st_size
    assert large.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert from_handle.sha256 == large.sha256
    assert streamed.size == len(b"line 0\nline 1\nline 2\n")

    detail = await hub.runs.get("motion-1")
    assert detail is not None and detail.run.artifact_count == 4
    by_name = {a.name: a for a in detail.artifacts}
    assert set(by_name) == {"result.json", "frames.bin", "log.txt", "copy.bin"}
    assert by_name["frames.bin"].url is not None
    assert await download(by_name["result.json"].url or "") == b'{"ok": true}'
    data = await download(by_name["frames.bin"].url or "")
    assert hashlib.sha256(data).hexdigest() == large.sha256
    one = await hub.runs.artifact(large.artifact_id)
    assert one.sha256 == large.sha256 and one.url


@pytest.mark.parametrize("multipart", [False, True], ids=["one-put", "multipart"])
async def test_a_large_upload_keeps_memory_flat(
    hub: Hub, tmp_path: Path, multipart: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if multipart:  # files over SINGLE_PUT_MAX go up in parts
        monkeypatch.setattr("hub.infra.blob.s3.SINGLE_PUT_MAX", 0)
    big = random_file(tmp_path / "big.bin", 32)  # 128 MiB
    async with hub.runs.start("flat") as run:
        await run.store_artifact("warmup.bin", b"x")
        tracemalloc.start()
        try:
            stored = await run.store_artifact("big.bin", big)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert stored.size == big.stat().st_size
    # the parts in flight (each may be copied once by the HTTP client) and the one being
    # read: bounded by the part size, never by the file's size
    limit = (2 * PARALLEL_PARTS + 2) * PART_SIZE
    assert peak < limit, f"peak {peak / 2**20:.1f} MiB for a 128 MiB upload"


async def test_a_failed_upload_leaves_no_event_and_no_object(hub: Hub) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(PART_SIZE)
        yield os.urandom(PART_SIZE)  # S3: the multipart upload has begun
        raise OSError("disk read error")

    async with hub.runs.start("fragile", run_id="fragile-1") as run:
        before = await produced(hub)
        with pytest.raises(OSError, match="disk read error"):
            await run.store_artifact("broken.bin", broken())
        assert await produced(hub) == before
        with pytest.raises(InputError, match="path separator"):
            await run.store_artifact("../escape.txt", b"x")
        with pytest.raises(InputError, match="no file at"):
            await run.store_artifact("missing.txt", "/no/such/file")
        with pytest.raises(InputError, match="expected bytes, a path"):
            await run.store_artifact("number.txt", 42)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="metadata"):
            await run.store_artifact("meta.txt", b"x", meta={"bad": float("nan")})
        assert await produced(hub) == before
    store = await hub.runtime.blob_store()
    assert await store.list(artifact_store_key("default", "fragile/")) == []
    detail = await hub.runs.get("fragile-1")
    assert detail is not None and detail.artifacts == []
    if store.url.startswith("s3://"):  # the multipart upload was aborted, not left behind
        s3 = store.client  # type: ignore[attr-defined]
        uploads = await s3.list_multipart_uploads(Bucket=store.bucket)  # type: ignore[attr-defined]
        assert not uploads.get("Uploads")


async def test_an_unreachable_store_is_a_store_error(
    database_url: str, tmp_path: Path, aws_env: dict[str, str]
) -> None:
    settings = HubSettings.model_validate(
        {
            "database_url": database_url,
            "home": tmp_path / "home",
            "partitions": TEST_PARTITIONS,
            "run_projectors": "always",
            "archive_url": "s3://nowhere/prefix",
            "s3_endpoint_url": "http://127.0.0.1:9",
        }
    )
    async with Hub.connect(settings) as hub, hub.runs.start("offline") as run:
        before = await produced(hub)
        with pytest.raises(StoreError, match="S3 bucket nowhere"):
            await run.store_artifact("a.txt", b"data")
        assert await produced(hub) == before
