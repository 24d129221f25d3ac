"""The consumer runtime: projectors that apply the log to read models exactly once."""

from consumers.runner import Projector, ProjectorSettings, ProjectorStats

__all__ = ["Projector", "ProjectorSettings", "ProjectorStats"]
