"""``agent-hub`` as a user runs it: ``up`` on embedded defaults in an empty directory,
the API and the CLI against it, a clean SIGTERM, and one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from projections import CATALOGUE
from tests.e2e.conftest import agent_hub, free_port, local_api, user_env

pytestmark = pytest.mark.slow


def test_up_serves_health_projections_and_the_registry(
    up: tuple[str, subprocess.Popen[str], Path],
) -> None:
    url, proc, home = up
    api = local_api(url, home)
    assert (home / ".agent_hub" / "pg").is_dir()  # embedded Postgres, nothing configured
    health = api.get("/healthz").json()
    assert health == {
        "status": "ok",
        "database": "ok",
        "log": "ok",
        "projections": "ok",
        "projectors": len(CATALOGUE),
        "archiver": True,
    }
    assert (home / ".agent_hub" / "archive").is_dir()  # the embedded archive store

    projections = api.get("/v1/projections").json()
    assert projections["log"] == "postgres"
    registry = next(p for p in projections["projections"] if p["name"] == "registry")
    assert (registry["version"], registry["state"], registry["lag"]) == (1, "live", 0)
    assert len(registry["partitions"]) == 4

    # a client in another process only produces and reads: the server projects
    done = agent_hub(
        "agents", "register", "planner", "--description", "plans", "--tag", "nlp", cwd=home
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "planner: registered"
    again = agent_hub(
        "agents", "register", "planner", "--description", "plans", "--tag", "nlp", cwd=home
    )
    assert again.stdout.strip() == "planner: unchanged"

    agents = api.get("/v1/agents", params={"tag": "nlp"}).json()
    assert [a["agent_id"] for a in agents["agents"]] == ["planner"]
    assert agents["agents"][0]["description"] == "plans"
    one = api.get("/v1/agents/planner").json()
    assert one["tags"] == ["nlp"] and one["status"] == "active"

    missing = api.get("/v1/agents/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no agent 'nobody'"
    bad = api.get("/v1/agents", params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "limit"

    status = agent_hub("status", "--json", cwd=home)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    registry = next(p for p in report["projections"] if p["name"] == "registry")
    assert registry["applied"] == 1 and registry["lag"] == 0

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    out = proc.stdout.read() if proc.stdout else ""
    assert "agent-hub: serving" in out and "agent-hub: stopped" in out
    assert "Traceback" not in out


def test_a_second_up_on_the_same_home_is_refused(
    up: tuple[str, subprocess.Popen[str], Path],
) -> None:
    _, _, home = up
    second = agent_hub("up", "--port", str(free_port()), cwd=home, timeout=60)
    assert second.returncode == 1
    assert second.stderr.startswith("agent-hub: error: another `agent-hub up` is already serving")
    assert "Traceback" not in second.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HUB_LOG_URL": "amqp://rabbit:5672"},
            "HUB_LOG_URL: HUB_LOG_URL 'amqp://rabbit:5672': unsupported scheme 'amqp'",
        ),
        ({"HUB_LOG_URL": "kafka://"}, "no Kafka bootstrap servers"),
        (
            {"HUB_DATABASE_URL": "mysql://x/y"},
            "HUB_DATABASE_URL: 'mysql://x/y' is not a postgresql:// URL",
        ),
        (
            {"HUB_ARCHIVE_URL": "ftp://x"},
            "HUB_ARCHIVE_URL: 'ftp://x': use s3://bucket/prefix or file://path",
        ),
        (
            {"HUB_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
            "cannot connect to Postgres at postgresql://postgres@127.0.0.1:1/none",
        ),
        (
            {
                "HUB_DATABASE_URL": "{test_database}",  # a Postgres that answers
                "HUB_LOG_URL": "kafka://127.0.0.1:1",
                "HUB_KAFKA_REQUEST_TIMEOUT_MS": "2000",
            },
            "cannot connect to Kafka at 127.0.0.1:1",
        ),
    ],
)
def test_wrong_urls_and_unreachable_services_are_one_line_errors(
    tmp_path: Path, env: dict[str, str], expected: str, request: pytest.FixtureRequest
) -> None:
    if env.get("HUB_DATABASE_URL") == "{test_database}":
        env = env | {"HUB_DATABASE_URL": request.getfixturevalue("database_url")}
    result = agent_hub("status", cwd=tmp_path, env=user_env() | env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agent-hub: error: ")
    assert expected in lines[0]


def test_up_on_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = agent_hub("up", "--port", str(port), cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"agent-hub: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
