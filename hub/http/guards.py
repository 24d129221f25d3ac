"""What keeps a browser from being turned against the API: the Host header must be one
the server answers to (DNS rebinding), writes must be JSON (a cross-site form post cannot
send it without a CORS preflight), and CORS is off unless origins are listed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hub.http.errors import error_response
from hub.http.idempotency import WRITES, ASGIApp, Receive, Scope, Send

__all__ = ["HostCheck", "JsonWrites", "allowed_hosts", "split_list"]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list (blanks dropped)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def allowed_hosts(setting: str, bind_host: str) -> frozenset[str] | None:
    """The Host names to answer (None: any): loopback, the address the server binds to
    (unless a wildcard), and ``HUB_API_ALLOWED_HOSTS``."""
    listed = split_list(setting)
    if "*" in listed:
        return None
    hosts = set(LOOPBACK_HOSTS) | {h.lower() for h in listed}
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.add(bind_host.lower())
    return frozenset(hosts)


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value[: value.find("]") + 1]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


class HostCheck:
    """Answers 400 to a request whose Host header is not an allowed name."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str] | None) -> None:
        self.app = app
        self.hosts = None if hosts is None else frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hosts is not None:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if _host_name(host) not in self.hosts:
                response = error_response(
                    "InputError",
                    f"Host {host!r} is not one this server answers to (HUB_API_ALLOWED_HOSTS)",
                    "Host",
                    400,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class JsonWrites:
    """Answers 415 to a write whose body is not JSON, except where ``raw`` allows a raw
    body (artifact uploads, which a form cannot make either without credentials)."""

    def __init__(self, app: ASGIApp, raw: Callable[[Scope], bool]) -> None:
        self.app = app
        self.raw = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITES and not self.raw(scope):
            headers: dict[bytes, Any] = dict(scope.get("headers") or [])
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            has_body = headers.get(b"content-length", b"0") != b"0" or (
                b"transfer-encoding" in headers
            )
            if (kind or has_body) and kind != b"application/json":
                response = error_response(
                    "UnsupportedMediaType",
                    f"the body must be application/json, not {kind.decode('latin-1') or 'none'}",
                    "Content-Type",
                    415,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
