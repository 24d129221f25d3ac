"""The floor for a Strands session store on Postgres, for ``tests.bench.strands``.

:class:`TableRepository` is the least a store that makes every Strands call durable in
Postgres can do: one statement per call (an ``INSERT``, an ``UPDATE`` or a ``SELECT`` on
one table of JSON documents, encoded by the hub's own codec), on the hub's own database
and connection pool, through the same thread hop as ``HubSessionManager`` (Strands calls
its repository synchronously; the pool lives on the hub's event loop). No log, no events,
no projections. It restores the same conversations as Strands' own stores, so it is a
working store, not a stub.

Whatever ``HubSessionManager`` does above this floor is the hub's own cost; what the floor
itself costs against ``FileSessionManager`` (which writes files and never fsyncs) is the
price of one durable Postgres commit per call.
"""

from __future__ import annotations

from typing import Any

from strands.session.session_repository import SessionRepository
from strands.types.exceptions import SessionException
from strands.types.session import Session, SessionAgent, SessionMessage

from hub.bridge import SyncHub
from hub.client import Hub

__all__ = ["TableRepository", "create_floor_table"]

SCHEMA = "bench_floor"

CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.documents (
    session_id text NOT NULL,
    agent_id   text NOT NULL,  -- '' for the session itself
    idx        integer NOT NULL,  -- a message's index; -1 for a session or an agent
    body       jsonb NOT NULL,
    PRIMARY KEY (session_id, agent_id, idx)
)
"""
INSERT = f"INSERT INTO {SCHEMA}.documents VALUES ($1, $2, $3, $4)"
UPSERT = INSERT + " ON CONFLICT (session_id, agent_id, idx) DO UPDATE SET body = excluded.body"
UPDATE = f"UPDATE {SCHEMA}.documents SET body = $4 WHERE (session_id, agent_id, idx) = ($1, $2, $3)"
READ = f"SELECT body FROM {SCHEMA}.documents WHERE (session_id, agent_id, idx) = ($1, $2, $3)"
MESSAGES = f"""
SELECT body FROM {SCHEMA}.documents
WHERE session_id = $1 AND agent_id = $2 AND idx >= $3
ORDER BY idx
LIMIT $4
"""
DOCUMENT = -1  # the idx of a session's or an agent's own document


def create_floor_table(hub: SyncHub) -> None:
    hub.call(lambda h: h.context.pool.execute(CREATE))


class TableRepository(SessionRepository):
    """Strands' ``SessionRepository`` as one statement per call on one Postgres table."""

    def __init__(self, hub: SyncHub) -> None:
        self.hub = hub

    def _execute(self, sql: str, *args: Any) -> str:
        async def run(h: Hub) -> str:
            return str(await h.context.pool.execute(sql, *args))

        return self.hub.call(run)

    def _read(self, *key: Any) -> dict[str, Any] | None:
        async def run(h: Hub) -> Any:
            return await h.context.pool.fetchval(READ, *key)

        found: dict[str, Any] | None = self.hub.call(run)
        return found

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        self._execute(INSERT, session.session_id, "", DOCUMENT, session.to_dict())
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        found = self._read(session_id, "", DOCUMENT)
        return Session.from_dict(found) if found is not None else None

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        body = session_agent.to_dict()
        self._execute(INSERT, session_id, session_agent.agent_id, DOCUMENT, body)

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        found = self._read(session_id, agent_id, DOCUMENT)
        return SessionAgent.from_dict(found) if found is not None else None

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        body = session_agent.to_dict()
        if self._execute(UPDATE, session_id, session_agent.agent_id, DOCUMENT, body) == "UPDATE 0":
            raise SessionException(f"Agent {session_agent.agent_id} does not exist")

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        body = session_message.to_dict()
        self._execute(UPSERT, session_id, agent_id, session_message.message_id, body)

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        found = self._read(session_id, agent_id, message_id)
        return SessionMessage.from_dict(found) if found is not None else None

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        body = session_message.to_dict()
        if self._execute(UPDATE, session_id, agent_id, session_message.message_id, body) == (
            "UPDATE 0"
        ):
            raise SessionException(f"Message {session_message.message_id} does not exist")

    def list_messages(
        self,
        session_id: str,
        agent_id: str,
        limit: int | None = None,
        offset: int = 0,
        **kwargs: Any,
    ) -> list[SessionMessage]:
        async def run(h: Hub) -> list[Any]:
            return list(await h.context.pool.fetch(MESSAGES, session_id, agent_id, offset, limit))

        return [SessionMessage.from_dict(row[0]) for row in self.hub.call(run)]
