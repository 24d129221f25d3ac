"""Event log adapters, and opening one from a URL.

- ``kafka://host1:9092,host2:9092`` opens :class:`~hub.infra.log.kafka.KafkaLog`
  (``?namespace=staging.`` prefixes the hub's topic and group names on a shared cluster);
- ``postgresql://...`` (or ``postgres://``) opens :class:`~hub.infra.log.postgres.PostgresLog`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hub.infra.ports import EventLog
from schemas.errors import ConfigError

__all__ = ["namespace_of", "open_log", "validate_log_url"]


def validate_log_url(url: str) -> str:
    """Check a log URL, returning it; raises :class:`ConfigError` naming what is wrong."""
    scheme = urlsplit(url).scheme
    if scheme == "kafka":
        servers = url.split("://", 1)[1].split("?", 1)[0].strip("/")
        if not servers:
            raise ConfigError(
                f"HUB_LOG_URL {url!r}: no Kafka bootstrap servers (kafka://host:9092)"
            )
        namespace_of(url)  # checked here, so a bad one is a configuration error at start
        for server in servers.split(","):
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(
                    f"HUB_LOG_URL {url!r}: {server!r} is not host:port (kafka://host:9092,host2:9092)"
                )
        return url
    if scheme in ("postgresql", "postgres"):
        return url
    raise ConfigError(
        f"HUB_LOG_URL {url!r}: unsupported scheme {scheme!r} "
        "(use kafka://host:9092,... or postgresql://...)"
    )


def namespace_of(url: str) -> str:
    """The ``namespace`` of a ``kafka://`` URL (``kafka://h:9092?namespace=staging.``): a
    prefix of the hub's topic and consumer-group names, so that several hubs can share one
    Kafka cluster. Empty by default."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    unknown = sorted(set(query) - {"namespace"})
    if unknown:
        raise ConfigError(f"HUB_LOG_URL {url!r}: unknown parameter {unknown[0]!r} (only namespace)")
    namespace = query.get("namespace", [""])[-1]
    if not re.fullmatch(r"[A-Za-z0-9._-]{0,100}", namespace):
        raise ConfigError(
            f"HUB_LOG_URL {url!r}: namespace {namespace!r} may hold only letters, digits, "
            "'.', '_' and '-' (at most 100)"
        )
    return namespace


def open_log(url: str, **options: Any) -> EventLog:
    """An (unstarted) event log for ``url``; ``options`` go to the adapter."""
    validate_log_url(url)
    if url.startswith("kafka://"):
        from hub.infra.log.kafka import KafkaLog, KafkaSettings

        servers = url.split("://", 1)[1].split("?", 1)[0].strip("/")
        return KafkaLog(KafkaSettings(servers, namespace=namespace_of(url), **options))
    from hub.infra.log.postgres import PostgresLog

    return PostgresLog(url, **options)
