"""Agent Hub's errors (defined in :mod:`schemas.errors`, the bottom layer)."""

from schemas import errors as _errors
from schemas.errors import *  # noqa: F403

__all__ = list(_errors.__all__)
