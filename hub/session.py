"""The seed's import path ``from hub.session import generate_run_id`` (kept as it is);
the code lives in :mod:`hub.compat.session`."""

from hub.compat.session import create_session_manager, generate_run_id

__all__ = ["create_session_manager", "generate_run_id"]
