"""HTTP API benchmark (issue 12), all in one run on one machine.

    python -m tests.bench.api [--clients 20] [--seconds 10] [--messages 10000]

1. ``agent-hub up`` (embedded defaults, rate limit off) serves; 20 concurrent clients,
   each with its own keep-alive connection, for ``--seconds`` each:
   - read: ``GET /v1/threads/{id}/messages?limit=50`` (the last 50 messages);
   - write: ``POST /v1/threads/{id}/messages`` with a batch of 50 messages (each client
     its own thread; answered once the batch is in the log);
   against the baseline: a bare uvicorn endpoint (one worker, the same server as ours)
   answering each request with the same response bytes, from memory (the framework's
   ceiling). Requests/s, p50 and p99 latency; ratio = ours / baseline (goals: reads
   >= 0.5, batched writes >= 0.3).
   ``--api-workers`` API processes (default 2, on these 2-core machines the most that
   helped; 1 runs the API inside the projectors' process).
2. One agent appending ``--messages`` messages one ``append`` at a time, remote mode
   (HUB_URL and an API key) against direct mode (the log and database directly), on the
   same server: messages/s until every append is acknowledged, and until all are
   readable. Goal: remote >= 0.5x direct.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from hub.client import Hub
from hub.infra.logs import configure_logging
from hub.settings import load_settings
from tests.e2e.conftest import free_port, start_up

BARE_APP = """
import sys
from pathlib import Path
get_body = Path(sys.argv[1]).read_bytes()
post_body = Path(sys.argv[2]).read_bytes()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = get_body
    status = 200
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        body, status = post_body, 201
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

import uvicorn
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning",
            access_log=False)
"""


def text(i: int) -> str:
    return f"message {i}: let us plan the next step of the project and check the budget"


def batch(start: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text(start + i)} for i in range(50)]}


async def load(
    url: str, token: str, clients: int, seconds: float, method: str, paths: list[str]
) -> tuple[float, float, float]:
    """``clients`` loops for ``seconds``; requests/s, p50 and p99 latency (ms)."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    body = json.dumps(batch(0)).encode()
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        path = paths[n % len(paths)]
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if method == "GET":
                    response = await http.get(path)
                else:
                    response = await http.post(
                        path, content=body, headers={"content-type": "application/json"}
                    )
                assert response.status_code < 300, response.text
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for n in range(clients):
            tg.start_soon(client, n)
    took = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / took, q[49] * 1000, q[98] * 1000


def line(
    name: str, ours: tuple[float, float, float], base: tuple[float, float, float], goal: float
) -> str:
    ratio = ours[0] / base[0]
    mark = "meets" if ratio >= goal else "BELOW"
    return (
        f"{name:<34} ours {ours[0]:8,.0f} req/s  p50 {ours[1]:6.1f} ms  p99 {ours[2]:7.1f} ms | "
        f"bare {base[0]:8,.0f} req/s  p50 {base[1]:6.1f} ms  p99 {base[2]:7.1f} ms | "
        f"ratio {ratio:.2f} (goal >= {goal}) {mark}"
    )


async def appends(hub: Hub, count: int) -> tuple[float, float]:
    """One agent appending ``count`` messages: seconds until acknowledged, until readable."""
    thread = await hub.sessions.start_thread(agent_id="bench-agent")
    started = time.perf_counter()
    for i in range(count):
        await thread.append("user", text(i))
    await hub.flush()
    acknowledged = time.perf_counter() - started
    while True:
        last = await thread.messages(limit=1)
        if last and last[0].seq == count:
            break
        await anyio.sleep(0.01)
    return acknowledged, time.perf_counter() - started


def start_bare(get_file: Path, post_file: Path, port: int) -> subprocess.Popen[bytes]:
    """The baseline: a bare uvicorn endpoint answering from memory, once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(get_file), str(post_file), str(port)]
    )
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)


async def main_async(args: argparse.Namespace) -> None:
    configure_logging("warning")
    home = Path(tempfile.mkdtemp(prefix="hub-bench-api-"))
    port, bare_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_up(
        home,
        port,
        "--api-workers",
        str(args.api_workers),
        env={"HUB_API_RATE_LIMIT": "0", "HUB_LOG_LEVEL": "warning"},
    )
    bare: subprocess.Popen[bytes] | None = None
    try:
        token = (home / ".agent_hub" / "api_key").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=120) as http:
            threads = []
            for n in range(args.clients):
                thread_id = f"bench-{n}"
                await http.post("/v1/threads", json={"agent_id": "bench", "thread_id": thread_id})
                threads.append(thread_id)
            for start in range(0, 1000, 50):  # the read thread: 1,000 messages
                await http.post(f"/v1/threads/{threads[0]}/messages", json=batch(start))
            got = await http.get(f"/v1/threads/{threads[0]}/messages", params={"limit": 50})
            posted = await http.post(f"/v1/threads/{threads[1]}/messages", json=batch(0))
        get_file, post_file = home / "get.json", home / "post.json"
        get_file.write_bytes(got.content)
        post_file.write_bytes(posted.content)
        bare = start_bare(get_file, post_file, bare_port)
        bare_url = f"http://127.0.0.1:{bare_port}"

        print(
            f"HTTP API benchmark: {args.clients} clients, {args.seconds:g} s per row, "
            f"agent-hub up --api-workers {args.api_workers} (projectors, archiver and embedded "
            f"Postgres beside), bare endpoint: 1 uvicorn worker; {os.cpu_count()} cores\n"
        )
        read_paths = [f"/v1/threads/{threads[0]}/messages?limit=50"]
        write_paths = [f"/v1/threads/{t}/messages" for t in threads]
        base_read = await load(bare_url, token, args.clients, args.seconds, "GET", read_paths)
        ours_read = await load(url, token, args.clients, args.seconds, "GET", read_paths)
        print(line("GET last 50 messages", ours_read, base_read, 0.5))
        base_write = await load(bare_url, token, args.clients, args.seconds, "POST", write_paths)
        ours_write = await load(url, token, args.clients, args.seconds, "POST", write_paths)
        print(line("POST a batch of 50 messages", ours_write, base_write, 0.3))

        remote = load_settings(url=url, api_key=token, home=home / "remote-client")
        direct = load_settings(home=home / ".agent_hub", log_level="warning")
        async with Hub(direct) as hub:
            await hub.catch_up(timeout=600)  # the POST rows are projected first
            direct_ack, direct_read = await appends(hub, args.messages)
        async with Hub(remote) as hub:
            remote_ack, remote_read = await appends(hub, args.messages)
        n = args.messages
        print(
            f"\none agent, {n:,} appends, one call each:\n"
            f"  acknowledged: remote {n / remote_ack:8,.0f} msg/s, direct {n / direct_ack:8,.0f} "
            f"msg/s, ratio {direct_ack / remote_ack:.2f} (goal >= 0.5)\n"
            f"  readable:     remote {n / remote_read:8,.0f} msg/s, direct {n / direct_read:8,.0f} "
            f"msg/s, ratio {direct_read / remote_read:.2f}"
        )
    finally:
        if bare is not None:
            bare.kill()
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--api-workers", type=int, default=2)
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
