"""The seed's import path ``from hub.metrics import MetricsExporter`` (kept as it is);
the code lives in :mod:`hub.compat.metrics`."""

from hub.compat.metrics import MetricsExporter, code_version

__all__ = ["MetricsExporter", "code_version"]
