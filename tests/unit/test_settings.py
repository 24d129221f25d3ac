from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.settings import HubSettings, load_settings
from schemas.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(("HUB_", "AGENT_HUB_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_nothing_set_means_everything_embedded() -> None:
    s = load_settings()
    assert (s.log_url, s.database_url, s.archive_url) == (None, None, None)
    assert s.embedded_database
    assert s.home == Path(".agent_hub")
    assert s.archive == (Path.cwd() / ".agent_hub" / "archive").as_uri()
    assert s.topic_partitions() == {
        "agenthub.sessions": 4,
        "agenthub.runs": 4,
        "agenthub.prompts": 4,
        "agenthub.registry": 4,
        "agenthub.access": 4,
        "agenthub.checkpoints": 4,
        "agenthub.memory": 4,
        "agenthub.dlq": 4,
    }


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text(
        "HUB_LOG_URL=kafka://k1:9092,k2:9092\nHUB_DATABASE_URL=postgresql://u@db/hub\n"
    )
    monkeypatch.setenv("HUB_ARCHIVE_URL", "s3://bucket/prefix")
    s = load_settings()
    assert s.log_url == "kafka://k1:9092,k2:9092"
    assert s.database_url == "postgresql://u@db/hub"
    assert s.archive == "s3://bucket/prefix"
    assert not s.embedded_database


def test_the_seeds_local_dir_variable_sets_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_HUB_LOCAL_DIR", "./somewhere")
    assert load_settings().home == Path("somewhere")


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "HUB_LOG_URL",
            "redis://x",
            "HUB_LOG_URL: HUB_LOG_URL 'redis://x': unsupported scheme 'redis'",
        ),
        ("HUB_LOG_URL", "kafka://host-without-port", "is not host:port"),
        (
            "HUB_DATABASE_URL",
            "sqlite:///x.db",
            "HUB_DATABASE_URL: 'sqlite:///x.db' is not a postgresql:// URL",
        ),
        ("HUB_ARCHIVE_URL", "s3://", "HUB_ARCHIVE_URL: 's3://': no bucket"),
        ("HUB_PARTITIONS", "0", "HUB_PARTITIONS: Input should be greater than or equal to 1"),
        (
            "HUB_RUN_PROJECTORS",
            "sometimes",
            "HUB_RUN_PROJECTORS: Input should be 'auto', 'always', 'never' or 'process'",
        ),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_settings_travel_to_a_child_process_as_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = HubSettings(partitions=3, log_json=True, archive_url="file:///tmp/a")
    env = settings.to_env()
    assert env["HUB_PARTITIONS"] == "3" and env["HUB_LOG_JSON"] == "true"
    assert "HUB_LOG_URL" not in env  # unset stays unset
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert HubSettings() == settings


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_rebuild_workers_must_be_a_count_or_auto(value: str) -> None:
    from hub.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["rebuild", "registry", "--workers", value])
    assert exc.value.code == 2


def test_rebuild_workers_auto_is_one_per_core() -> None:
    from hub.cli.args import workers

    assert workers("auto") == (os.cpu_count() or 1) and workers("3") == 3


def test_kafka_namespace_from_the_log_url() -> None:
    from hub.infra.log import namespace_of
    from hub.infra.log.kafka_common import Names
    from hub.infra.ports import TopicPartition

    assert namespace_of("kafka://h:9092") == ""
    assert namespace_of("kafka://h:9092?namespace=staging.") == "staging."
    for bad in ("kafka://h:9092?namespace=a/b", "kafka://h:9092?nam=x"):
        with pytest.raises(ConfigError, match="HUB_LOG_URL"):
            namespace_of(bad)
    names = Names("staging.")
    tp = TopicPartition("agenthub.registry", 2)
    assert names.ktp(tp).topic == "staging.agenthub.registry"
    assert names.tp(names.ktp(tp)) == tp
    assert names.group("registry") == "staging.registry" and names.group(None) is None
    assert names.hub_topic("staging.agenthub.runs") == "agenthub.runs"
    assert names.hub_topic("prod.agenthub.runs") is None


def test_processes_projecting_for_others_never_gather_batches() -> None:
    """`agent-hub up` and `agent-hub project` serve readers in other processes: their
    projectors take what they have at once; an application's embedded ones gather."""
    from hub.cli.serve import _projecting

    mine = HubSettings(embedded_projector_linger_ms=80, url="http://hub.example")
    assert load_settings().embedded_projector_linger_ms == 50
    served = _projecting(mine)
    assert (served.run_projectors, served.embedded_projector_linger_ms) == ("always", 0)
    assert served.url is None and mine.embedded_projector_linger_ms == 80
