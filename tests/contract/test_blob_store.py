"""One contract for every BlobStore: the file store and S3 (moto's HTTP server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.infra.blob import open_blob_store
from hub.infra.ports import BlobStore
from schemas.errors import ConfigError, InputError, NotFoundError

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(archive_url: str, s3_endpoint: str | None) -> AsyncIterator[BlobStore]:
    async with open_blob_store(archive_url, endpoint_url=s3_endpoint) as s:
        yield s


async def test_put_get_exists_list_delete(store: BlobStore) -> None:
    uri = await store.put("t/0001/a.avro", b"first")
    await store.put("t/0001/b.avro", b"second")
    await store.put("t/0002/c.avro", b"third")
    assert uri == store.uri("t/0001/a.avro")
    assert await store.get("t/0001/a.avro") == b"first"
    assert await store.exists("t/0001/b.avro") and not await store.exists("t/0001/zzz")
    assert await store.list("t/0001/") == ["t/0001/a.avro", "t/0001/b.avro"]
    assert await store.list("t/") == ["t/0001/a.avro", "t/0001/b.avro", "t/0002/c.avro"]
    assert await store.list("nothing/") == []
    await store.put("t/0001/a.avro", b"replaced")  # a rewrite is harmless
    assert await store.get("t/0001/a.avro") == b"replaced"
    await store.delete("t/0001/a.avro")
    assert await store.list("t/0001/") == ["t/0001/b.avro"]
    with pytest.raises(NotFoundError):
        await store.get("t/0001/a.avro")


async def test_large_objects_round_trip(store: BlobStore) -> None:
    data = bytes(range(256)) * 40_000  # ~10 MB
    await store.put("big/object.bin", data)
    assert await store.get("big/object.bin") == data


async def test_file_store_rejects_keys_outside_its_root(tmp_path: Path) -> None:
    async with open_blob_store((tmp_path / "root").as_uri()) as s:
        with pytest.raises(InputError):
            await s.put("../escape", b"x")
        await s.put("ok/.hidden-temp", b"x")
        assert await s.list("ok/") == []  # temporary files never show up


def test_bad_urls() -> None:
    with pytest.raises(ConfigError, match="no bucket"):
        open_blob_store("s3:///prefix")
    with pytest.raises(ConfigError, match="use s3://bucket/prefix or file://path"):
        open_blob_store("gs://bucket")
