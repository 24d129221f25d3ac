"""One API worker process: ``python -m hub.http.worker FD`` serves the HTTP API on the
listening socket it inherited as file descriptor ``FD``, with settings from its
environment (``agent-hub up --api-workers N`` and ``agent-hub api --workers N`` start
them; the kernel shares connections out among the workers). uvicorn handles SIGTERM and
SIGINT: the worker finishes the requests in hand, then stops."""

from __future__ import annotations

import socket
import sys

import anyio

__all__ = ["main"]


async def serve(sock: socket.socket) -> None:
    import uvicorn

    from hub.client import Hub
    from hub.http.app import create_app
    from hub.infra.tuning import tune_gc
    from hub.settings import load_settings

    settings = load_settings(url=None)  # a server is direct, whatever a .env says
    async with Hub(settings) as hub:
        config = uvicorn.Config(
            create_app(hub), log_level="warning", lifespan="off", access_log=False
        )
        server = uvicorn.Server(config)
        tune_gc()  # the app as built stays out of the collector's scans
        await server.serve(sockets=[sock])


def main() -> None:
    from hub.infra.logs import configure_logging
    from hub.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    sock = socket.socket(fileno=int(sys.argv[1]))
    anyio.run(serve, sock, backend_options={"use_uvloop": True})


if __name__ == "__main__":
    main()
