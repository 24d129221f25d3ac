"""The command line: ``agent-hub`` (``python -m hub.cli``)."""

from hub.cli.main import main

__all__ = ["main"]
