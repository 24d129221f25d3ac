"""The Agent Hub seed's README, run verbatim as its users run it.

``seed_agent_hub_readme.md`` is a verbatim copy of the seed document. Its Quick Start
(steps 3 and 4) and its "Sync on Startup" example are cut out of it unchanged and run as
scripts in a fresh directory holding a ``.env``: once on the embedded defaults, once
with ``USE_S3=true`` against the moto S3 server. A separate checking script then reads
what they stored through the hub.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from tests.e2e.conftest import python, user_env

README = (Path(__file__).parent / "seed_agent_hub_readme.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.timeout(600)


def block_after(heading: str) -> str:
    """The first ```python block after ``heading`` in the seed README, verbatim."""
    start = README.index(heading)
    match = re.compile(r"```python\n(.*?)```", re.S).search(README, start)
    assert match is not None, heading
    return match.group(1)


QUICK_START = block_after("### 3. Load Environment Variables") + block_after(
    "### 4. Use Hub Components"
)
SYNC_ON_STARTUP = block_after("### Example: Sync on Startup")

CHECK = """
import json
from hub import AgentRegistry, S3PromptManager
from hub.compat.config import seed_hub

registry = AgentRegistry()
agent = registry.get_agent("my-agent")
prompts = S3PromptManager(agent_id="my-agent")
runs = seed_hub().call(lambda hub: hub.runs.list(agent_id="my-agent"))
detail = seed_hub().call(lambda hub: hub.runs.get(runs[0].run_id))
print(json.dumps({
    "agent": agent,
    "current": prompts.get_current(),
    "versions": [v["version"] for v in prompts.list_versions()],
    "runs": [[r.run_id, r.status, r.prompt_version] for r in runs],
    "artifacts": [a.uri for a in detail.artifacts],
}))
"""


def run_script(code: str, cwd: Path, env: dict[str, str]) -> str:
    done = python(code, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def write_env(cwd: Path, **values: str) -> None:
    (cwd / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def check(cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_script(CHECK, cwd, env).strip().splitlines()[-1])
    return result


def test_quick_start_verbatim_on_embedded_defaults(tmp_path: Path) -> None:
    write_env(tmp_path, USE_S3="false")
    env = user_env()
    run_script(QUICK_START, tmp_path, env)
    run_script(QUICK_START, tmp_path, env)  # a second run of the same script: idempotent
    state = check(tmp_path, env)
    agent = state["agent"]
    assert agent["agent_id"] == "my-agent" and agent["description"] == "My awesome agent"
    assert agent["revision"] == 1  # registering again changed nothing
    assert agent["run_count"] == 2 and agent["success_rate"] == 1.0
    assert state["current"] == "You are a helpful assistant."
    assert state["versions"] == ["v1"]  # ensure_exists added nothing the second time
    assert [r[1:] for r in state["runs"]] == [["success", "v1"], ["success", "v1"]]
    assert all(r[0].startswith("my-agent_") for r in state["runs"])
    assert state["artifacts"][0].startswith((tmp_path / ".agent_hub").resolve().as_uri())
    summaries = list((tmp_path / ".agent_hub" / "metrics").glob("*/my-agent_*.json"))
    assert summaries, "export() wrote no local summary"
    assert json.loads(summaries[0].read_text())["prompt_version"] == "v1"


def test_quick_start_verbatim_with_s3(
    tmp_path: Path, moto_endpoint: str, aws_env: dict[str, str]
) -> None:
    write_env(tmp_path, USE_S3="true", AGENT_HUB_BUCKET="seed-e2e", AGENT_HUB_REGION="us-east-1")
    env = {**user_env(), **aws_env, "AWS_ENDPOINT_URL_S3": moto_endpoint}
    run_script(QUICK_START, tmp_path, env)
    state = check(tmp_path, env)
    assert state["current"] == "You are a helpful assistant."
    assert state["runs"][0][1:] == ["success", "v1"]
    uri = state["artifacts"][0]
    assert uri.startswith("s3://seed-e2e/agent-hub/artifacts/default/my-agent/my-agent_")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    key = uri.removeprefix("s3://seed-e2e/")
    summary = json.loads(s3.get_object(Bucket="seed-e2e", Key=key)["Body"].read())
    assert summary["agent_id"] == "my-agent" and summary["prompt_version"] == "v1"


def test_missing_bucket_is_the_seeds_error(tmp_path: Path) -> None:
    write_env(tmp_path, USE_S3="true")
    done = python(QUICK_START, cwd=tmp_path)
    assert done.returncode != 0
    assert "AGENT_HUB_BUCKET must be set when USE_S3=true" in done.stderr


def test_sync_on_startup_verbatim_forwards_what_was_spooled(tmp_path: Path) -> None:
    write_env(tmp_path, USE_S3="false")
    env = user_env()
    out = run_script(SYNC_ON_STARTUP, tmp_path, env)
    assert "Metrics synced: 0" in out and "Registry synced: 0" in out
    # An earlier run that found the log unreachable left its events in the spool.
    spool_them = """
from hub.infra.spool import Spool
from hub.infra.producer import EventProducer
from schemas.codec import Codec
from schemas.events import AgentRegistered, RunStarted, RunFinished, Provenance

class NoLog:
    pass

producer = EventProducer(NoLog(), Codec())
envelope = {"tenant_id": "default", "actor": "offline-agent"}
events = [AgentRegistered(**envelope, agent_id="offline-agent", description="offline")]
for i in range(3):
    run = {**envelope, "agent_id": "offline-agent", "run_id": f"offline-{i}"}
    events += [RunStarted(**run, provenance=Provenance()),
               RunFinished(**run, status="success", duration_s=1.0)]
Spool(__import__("pathlib").Path(".agent_hub/spool")).append(
    [producer.record(e) for e in events])
"""
    run_script(spool_them, tmp_path, env)
    out = run_script(SYNC_ON_STARTUP, tmp_path, env)
    assert "Metrics synced: 7" in out and "Registry synced: 0" in out, out
    state = run_script(
        "from hub import AgentRegistry; import json; "
        "print(json.dumps(AgentRegistry().get_agent('offline-agent')))",
        tmp_path,
        env,
    )
    agent = json.loads(state.strip().splitlines()[-1])
    assert agent["description"] == "offline" and agent["run_count"] == 3
    assert not list((tmp_path / ".agent_hub" / "spool").glob("*.batch"))
