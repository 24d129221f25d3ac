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
INFRA = ("kafka", "postgres", "minio")
DOT_ENV = {
    "POSTGRES_PASSWORD": "pg-Secret_1",
    "MINIO_ROOT_USER": "admin",
    "MINIO_ROOT_PASSWORD": "m1n10-Secret",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(m: re.Match[str]) -> str:
        name, kind, rest = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {rest}")
        return rest or ""

    return _VARIABLE.sub(one, str(value))


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
        monkeypatch.setenv(key, interpolate(value, DOT_ENV))
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
    pg_env = {k: interpolate(v, DOT_ENV) for k, v in services["postgres"]["environment"].items()}
    assert (pg.hostname, pg.port, pg.username, pg.password, pg.path.lstrip("/")) == (
        "postgres",
        5432,
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    # the archive: a bucket on the minio service, with its credentials
    env = {k: interpolate(v, DOT_ENV) for k, v in services[name]["environment"].items()}
    assert urlsplit(settings.archive).scheme == "s3"
    endpoint = urlsplit(env["AWS_ENDPOINT_URL_S3"])
    assert (endpoint.hostname, endpoint.port) == ("minio", 9000)
    minio_env = {k: interpolate(v, DOT_ENV) for k, v in services["minio"]["environment"].items()}
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio_env["MINIO_ROOT_USER"],
        minio_env["MINIO_ROOT_PASSWORD"],
    )


def test_api_port_and_healthcheck_agree(services: dict[str, Any]) -> None:
    api = services["hub-api"]
    args = _parser().parse_args(api["command"])
    assert args.host == "0.0.0.0"
    (published,) = api["ports"]
    assert interpolate(published, {}) == f"127.0.0.1:{args.port}:{args.port}"
    assert interpolate(published, {"HUB_API_PUBLISH": "0.0.0.0:80"}).endswith(f":{args.port}")
    probe = " ".join(shlex.quote(p) for p in api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{args.port}/healthz" in probe


def test_only_the_api_is_published(services: dict[str, Any]) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"hub-api"}


def test_credentials_come_from_the_users_env_file(services: dict[str, Any]) -> None:
    """No password in compose.yaml: each is ``${VAR:?...}``, which refuses to start
    without the user's .env, and .env.example names every one."""
    example = (ROOT / ".env.example").read_text()
    secrets = {
        ("postgres", "POSTGRES_PASSWORD"),
        ("minio", "MINIO_ROOT_USER"),
        ("minio", "MINIO_ROOT_PASSWORD"),
        *((name, "AWS_SECRET_ACCESS_KEY") for name in HUB_SERVICES),
    }
    for service, key in secrets:
        value = str(services[service]["environment"][key])
        match = _VARIABLE.fullmatch(value)
        assert match and match.group(2) == "?", (service, key, value)
        assert f"\n{match.group(1)}=\n" in example
        with pytest.raises(KeyError):
            interpolate(value, {})
    for name in HUB_SERVICES:
        url = str(services[name]["environment"]["HUB_DATABASE_URL"])
        assert "${POSTGRES_PASSWORD:?" in url
