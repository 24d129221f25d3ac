"""The consumer runtime: projectors that apply the log to read models exactly once."""

from consumers.projector import Projector, ProjectorSettings, ProjectorStats

__all__ = ["Projector", "ProjectorSettings", "ProjectorStats"]
