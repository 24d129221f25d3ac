"""Read your writes on any server: a write's answer says where its events landed
(``X-Hub-Position``, ``topic:partition:offset`` items), and a read sent with those
positions (``X-Hub-Read-After``) is answered only once every projection has applied them.
With one API process reads wait for its own writes anyway; with several (``--api-workers``)
a client passes the positions on, as the remote SDK does."""

from __future__ import annotations

from collections.abc import Callable

from hub.core.marks import POSITION, READ_AFTER, encode_marks, parse_marks
from hub.http.idempotency import WRITES, ASGIApp, Message, Receive, Scope, Send
from hub.infra.producer import EventProducer

__all__ = ["POSITION", "READ_AFTER", "WrittenPositions", "encode_marks", "parse_marks"]


class WrittenPositions:
    """Adds ``X-Hub-Position`` to a successful write's answer: the partitions this server
    wrote to while it ran, at their new ends (other requests' writes may be included,
    which only makes a read wait a little longer)."""

    def __init__(self, app: ASGIApp, producer: Callable[[], EventProducer]) -> None:
        self.app = app
        self.producer = producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        producer = self.producer()
        before = dict(producer.high_water)

        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                moved = {tp: o for tp, o in producer.high_water.items() if o > before.get(tp, -1)}
                if moved:
                    header = (POSITION.lower().encode(), encode_marks(moved).encode())
                    message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_position)
