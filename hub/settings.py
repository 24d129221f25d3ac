"""The one settings object: environment variables (``HUB_*``) and ``.env``.

With none of ``HUB_LOG_URL``, ``HUB_DATABASE_URL`` and ``HUB_ARCHIVE_URL`` set, everything
is embedded under ``./.agent_hub/``: a Postgres server from the ``pgserver`` package, the
Postgres log inside it, and a file archive. Moving to Kafka, a shared Postgres and S3 is a
change of URLs, not of code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.infra.log import validate_log_url
from schemas.errors import ConfigError
from schemas.events import TOPICS

__all__ = ["HubSettings", "load_settings"]


class HubSettings(BaseSettings):
    """Everything configurable about a hub process."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
        populate_by_name=True,
    )

    log_url: str | None = Field(None, description="kafka://h1:9092,h2:9092 or postgresql://...")
    database_url: str | None = Field(None, description="postgresql://... for the read models")
    archive_url: str | None = Field(None, description="s3://bucket/prefix or file://path")
    home: Path = Field(
        Path(".agent_hub"),
        validation_alias=AliasChoices("HUB_HOME", "AGENT_HUB_LOCAL_DIR"),
        description="Local directory for embedded Postgres, the archive and the spool",
    )
    url: str | None = Field(
        None,
        description="https://hub.example.com: use that hub's HTTP API for every call (remote "
        "mode) instead of the log and database directly",
    )
    api_key: str | None = Field(
        None, repr=False, description="The API key remote mode calls with (ahk_...)"
    )
    remote_linger_ms: int = Field(
        5, ge=0, description="How long remote appends wait to be sent with others"
    )
    remote_batch_bytes: int = Field(
        1 << 20, ge=1024, description="Most bytes of events one remote request carries"
    )
    remote_timeout_s: float = Field(30.0, gt=0, description="Timeout of one remote request")
    tenant: str = Field("default", min_length=1, max_length=200)
    actor: str = Field("agent-hub", min_length=1, max_length=200)

    partitions: int = Field(4, ge=1, le=1024, description="Partitions per topic when created")
    kafka_replication_factor: int = Field(3, ge=1)
    kafka_client_id: str = "agent-hub"
    kafka_linger_ms: int = Field(5, ge=0)
    kafka_request_timeout_ms: int = Field(30_000, ge=1000)
    kafka_session_timeout_ms: int = Field(10_000, ge=1000)

    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "HUB_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "s3_endpoint_url"
        ),
        description="S3-compatible endpoint (MinIO); default: AWS",
    )
    s3_region: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "HUB_S3_REGION", "AGENT_HUB_REGION", "AWS_DEFAULT_REGION", "s3_region"
        ),
    )
    archive_max_records: int = Field(10_000, ge=1, description="Records per archive segment")
    archive_max_bytes: int = Field(16 << 20, ge=1024, description="Bytes per archive segment")
    archive_max_age_s: float = Field(60.0, gt=0, description="Oldest record a segment waits for")
    archive_compression_level: int = Field(
        1, ge=0, le=9, description="Deflate level of archive segments (1: fastest; 9: smallest)"
    )

    max_event_bytes: int = Field(1 << 20, ge=1024, description="Largest encoded event")
    max_message_bytes: int = Field(
        1 << 20, ge=256, description="Largest conversation message (binary content goes by blob)"
    )
    batch_size: int = Field(
        2000, ge=1, description="Most events a projector reads per lane and applies at once"
    )
    projector_lanes: int = Field(
        2,
        ge=1,
        le=16,
        description="Transactions a projector applies at once, each for its own partitions",
    )
    batch_linger_ms: int = Field(
        10,
        ge=0,
        description="How long a projector waits to fill a batch while the one before is "
        "being applied (an idle one: see embedded_projector_linger_ms)",
    )
    embedded_projector_linger_ms: int = Field(
        50,
        ge=0,
        description="How long projectors running in an application's own process wait to "
        "gather more records into a batch while nothing in that process waits to read them "
        "(a read of one's own writes ends the wait at once); `agent-hub up` and `agent-hub "
        "project` never wait",
    )
    retry_max_s: float = Field(30.0, gt=0, description="Longest backoff between retries")
    dedupe_window_days: float = Field(
        30.0,
        ge=0,
        description="How long projections remember the ids of the events they applied, so "
        "a copy sent again (a spool forwarded twice, a retried write) is dropped; 0: forever",
    )
    retired_grace_s: float = Field(
        3600.0,
        ge=0,
        description="How long a projection version replaced by a newer one (a version bump "
        "in code) keeps its tables before they are dropped",
    )
    prompt_cache_ttl_s: float = Field(
        60.0, ge=0, description="How long a cached prompt is served before it is refreshed"
    )
    spool_retry_s: float = Field(
        5.0, gt=0, description="How often a hub retries forwarding its offline spool"
    )
    artifact_url_expires_s: int = Field(
        3600, ge=1, le=7 * 24 * 3600, description="Lifetime of presigned artifact URLs"
    )
    run_projectors: Literal["auto", "always", "never", "process"] = Field(
        "auto",
        description="auto: in this process when embedded and no server runs; process: in a "
        "child process this hub starts and stops (the agent's process keeps its core)",
    )

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    api_max_body_bytes: int = Field(
        8 << 20, ge=1024, description="Largest HTTP request body (larger ones get 413)"
    )
    api_max_artifact_bytes: int = Field(
        5 << 30, ge=1024, description="Largest artifact uploaded over HTTP (streamed to the store)"
    )
    api_key_cache_s: float = Field(
        2.0,
        ge=0,
        description="How long a server trusts a key lookup (a revoked key is "
        "refused within this time everywhere, at once where it was revoked)",
    )
    api_rate_limit: float = Field(
        100.0, ge=0, description="Requests per second one API key may make (0: no limit)"
    )
    api_idempotency_s: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="How long a write's Idempotency-Key is remembered (its answer replayed)",
    )
    api_rate_burst: int = Field(200, ge=1, description="Requests one key may make at once")
    api_allowed_hosts: str = Field(
        "",
        description="Comma-separated Host names the API answers besides loopback ones "
        "(DNS rebinding protection); * allows any",
    )
    api_cors_origins: str = Field(
        "", description="Comma-separated browser origins allowed to call the API (none: no CORS)"
    )
    log_level: str = "info"
    log_json: bool = False

    @field_validator("log_url")
    @classmethod
    def _check_log_url(cls, value: str | None) -> str | None:
        if value:
            try:
                validate_log_url(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value or None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value and (
            urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc
        ):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/") if value else None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError(f"{value!r} is not a postgresql:// URL")
        return value or None

    @field_validator("archive_url")
    @classmethod
    def _check_archive_url(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("s3", "file"):
                raise ValueError(f"{value!r}: use s3://bucket/prefix or file://path")
            if parts.scheme == "s3" and not parts.netloc:
                raise ValueError(f"{value!r}: no bucket (s3://bucket/prefix)")
        return value or None

    @property
    def embedded_database(self) -> bool:
        """Whether the read models live in the embedded Postgres under ``home``."""
        return self.database_url is None

    @property
    def archive(self) -> str:
        """The archive URL, defaulting to a file archive under ``home``."""
        return self.archive_url or (self.home.resolve() / "archive").as_uri()

    def to_env(self) -> dict[str, str]:
        """These settings as ``HUB_*`` environment variables (for a child process)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is not None:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"HUB_{name.upper()}"] = text
        return env

    def child_env(self) -> dict[str, str]:
        """This process's environment with its ``HUB_*`` variables replaced by these
        settings: what a child process needs to run with the same settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        return env | self.to_env()

    def topic_partitions(self) -> dict[str, int]:
        """Every hub topic with the partition count to create it with."""
        return {str(t): self.partitions for t in TOPICS}


def load_settings(**overrides: object) -> HubSettings:
    """Settings from the environment, ``.env`` and ``overrides``; bad values raise
    :class:`ConfigError` naming the variable."""
    try:
        return HubSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            problems.append(f"HUB_{name.upper()}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(problems)) from None
