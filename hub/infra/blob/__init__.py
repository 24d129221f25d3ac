"""Blob stores behind the ``BlobStore`` port: S3 (MinIO, AWS) and local files.

``open_blob_store(url)``: ``s3://bucket/prefix`` or ``file:///path``.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from hub.infra.ports import BlobStore
from schemas.errors import ConfigError

__all__ = ["open_blob_store"]


def open_blob_store(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> BlobStore:
    """An (unstarted) blob store for ``url``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from hub.infra.blob.file import FileBlobStore

        return FileBlobStore(unquote(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"{url!r}: no bucket (s3://bucket/prefix)")
        from hub.infra.blob.s3 import S3BlobStore

        return S3BlobStore(
            parts.netloc, parts.path.strip("/"), endpoint_url=endpoint_url, region=region
        )
    raise ConfigError(f"{url!r}: use s3://bucket/prefix or file://path")
