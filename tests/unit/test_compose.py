"""compose.yaml agrees with the settings and the CLI (no Docker engine runs here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hub.cli.main import _parser
from hub.settings import HubSettings

ROOT = Path(__file__).resolve().parents[2]
HUB_SERVICES = ("hub-api", "hub-projectors", "hub-archiver")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> HubSettings:
    for key in list(__import__("os").environ):
        if key.startswith("HUB_"):
            monkeypatch.delenv(key)
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    return HubSettings(_env_file=None)


def test_services_and_images(services: dict[str, Any]) -> None:
    assert set(services) == {"kafka", "postgres", "minio", *HUB_SERVICES}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["postgres"]["image"] == "postgres:16"
    assert services["minio"]["image"].startswith("minio/minio")
    for name in HUB_SERVICES:
        assert services[name]["build"] == "."


def test_kafka_runs_in_kraft_mode_without_auto_created_topics(services: dict[str, Any]) -> None:
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


@pytest.mark.parametrize("name", ["kafka", "postgres", "minio", *HUB_SERVICES])
def test_every_service_has_a_healthcheck(services: dict[str, Any], name: str) -> None:
    check = services[name]["healthcheck"]
    assert check["test"] and check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["interval"] and check["retries"] >= 3


@pytest.mark.parametrize("name", HUB_SERVICES)
def test_hub_services_wait_for_healthy_dependencies(services: dict[str, Any], name: str) -> None:
    deps = services[name]["depends_on"]
    assert {k: v["condition"] for k, v in deps.items()} == {
        "kafka": "service_healthy",
        "postgres": "service_healthy",
        "minio": "service_healthy",
    }


@pytest.mark.parametrize("name", HUB_SERVICES)
def test_hub_commands_are_real_cli_commands(services: dict[str, Any], name: str) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["agent-hub"]' in dockerfile
    args = _parser().parse_args(services[name]["command"])
    assert callable(args.fn)


@pytest.mark.parametrize("name", HUB_SERVICES)
def test_hub_urls_point_at_the_services(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(services[name], monkeypatch)
    kafka_env = services["kafka"]["environment"]
    # the log: a listener the kafka service advertises under its service name
    assert settings.log_url is not None
    bootstrap = settings.log_url.removeprefix("kafka://")
    advertised = re.findall(r"://([^,]+)", kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    assert bootstrap in advertised and bootstrap.startswith("kafka:")
    assert settings.kafka_replication_factor <= 1  # one broker in this compose file
    # the read models: the postgres service's own user, password and database
    pg = urlsplit(settings.database_url or "")
    pg_env = services["postgres"]["environment"]
    assert (pg.hostname, pg.port, pg.username, pg.password, pg.path.lstrip("/")) == (
        "postgres",
        5432,
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    # the archive: a bucket on the minio service, with its credentials
    env = services[name]["environment"]
    assert urlsplit(settings.archive).scheme == "s3"
    endpoint = urlsplit(env["AWS_ENDPOINT_URL_S3"])
    assert (endpoint.hostname, endpoint.port) == ("minio", 9000)
    assert any(str(p).endswith(":9000") for p in services["minio"]["ports"])
    minio_env = services["minio"]["environment"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio_env["MINIO_ROOT_USER"],
        minio_env["MINIO_ROOT_PASSWORD"],
    )


def test_api_port_and_healthcheck_agree(services: dict[str, Any]) -> None:
    api = services["hub-api"]
    args = _parser().parse_args(api["command"])
    assert args.host == "0.0.0.0"
    assert f"{args.port}:{args.port}" in api["ports"]
    probe = " ".join(shlex.quote(p) for p in api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{args.port}/healthz" in probe
