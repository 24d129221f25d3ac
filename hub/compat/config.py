"""The seeds' configuration API: ``HubConfig``, ``get_config()``, ``set_config()``.

It reads the seeds' variables when created (never at import time): ``USE_S3``,
``AGENT_HUB_BUCKET``, ``AGENT_HUB_REGION`` and ``AGENT_HUB_LOCAL_DIR``; ``to_settings()``
maps them onto :class:`~hub.settings.HubSettings` (the local directory is the hub's home,
S3 is the archive and blob store).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hub.bridge import SyncHub, sync_hub
from hub.infra.logs import quiet_library_logging
from hub.infra.spool import Spool
from hub.settings import HubSettings, load_settings
from schemas.errors import ConfigError

__all__ = ["HubConfig", "get_config", "pending_in_spool", "seed_hub", "set_config"]

_TRUE = {"1", "true", "yes", "on"}


class HubConfig:
    """Seed-compatible configuration, read from the environment when created."""

    def __init__(self) -> None:
        self.use_s3: bool = os.environ.get("USE_S3", "false").strip().lower() in _TRUE
        self.bucket: str | None = os.environ.get("AGENT_HUB_BUCKET") or None
        self.region: str = os.environ.get("AGENT_HUB_REGION") or "us-east-1"
        self.local_dir: Path = Path(os.environ.get("AGENT_HUB_LOCAL_DIR") or "./.agent_hub")

    def __repr__(self) -> str:
        return (
            f"HubConfig(use_s3={self.use_s3}, bucket={self.bucket!r}, region={self.region!r}, "
            f"local_dir={str(self.local_dir)!r})"
        )

    def validate(self, use_s3: bool | None = None) -> None:
        """Raise the seed's error when S3 is asked for without a bucket."""
        if (self.use_s3 if use_s3 is None else use_s3) and not self.bucket:
            raise ConfigError("AGENT_HUB_BUCKET must be set when USE_S3=true")

    def to_settings(self, *, use_s3: bool | None = None) -> HubSettings:
        """Hub settings for this configuration (``HUB_*`` variables still apply)."""
        s3 = self.use_s3 if use_s3 is None else use_s3
        self.validate(s3)
        overrides: dict[str, object] = {"home": self.local_dir}
        if s3:
            overrides["archive_url"] = f"s3://{self.bucket}/agent-hub"
            overrides["s3_region"] = self.region
        return load_settings(**overrides)


_config: HubConfig | None = None
_lock = threading.Lock()


def get_config() -> HubConfig:
    """The process's configuration (read from the environment on first use)."""
    global _config
    with _lock:
        if _config is None:
            _config = HubConfig()
        return _config


def set_config(config: HubConfig) -> None:
    """Replace the process's configuration (for tests, or to force local mode)."""
    global _config
    with _lock:
        _config = config


def seed_hub(use_s3: bool | None = None) -> SyncHub:
    """The shared hub for the seeds' facade, configured by :func:`get_config`."""
    quiet_library_logging()
    return sync_hub(get_config().to_settings(use_s3=use_s3))


def pending_in_spool() -> bool:
    """Whether the seed configuration's local spool holds events (no hub needed to know)."""
    return Spool.of_home(get_config().local_dir).has_pending()
