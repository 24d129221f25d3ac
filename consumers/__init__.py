"""The consumer runtime: projectors that apply the log to read models exactly once."""

from consumers.projector import Projector
from consumers.projector_types import ProjectorSettings, ProjectorStats

__all__ = ["Projector", "ProjectorSettings", "ProjectorStats"]
