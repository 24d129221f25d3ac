"""Runs, prompts and agents as a user meets them: a script writes through the SDK while
``agent-hub up`` serves; the HTTP API and ``agent-hub runs|prompts|agents`` read."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import agent_hub, local_api, python

pytestmark = pytest.mark.slow

SCRIPT = """
import anyio, json
from hub import Hub

async def main():
    async with Hub.connect() as hub:
        await hub.registry.register("writer", description="writes", tags=["nlp"])
        await hub.prompts.ensure_exists("writer", "Be brief.", "v1")
        await hub.prompts.set("writer", "Be brief.\\nBe kind.", "v2", note="kinder")
        ids = []
        for i, version in enumerate(["v1", "v2", "v2"]):
            async with hub.runs.start(
                "writer", input={"n": i}, provenance={"prompt_version": version}
            ) as run:
                await run.set_timing("latency", 0.1 * (i + 1))
                artifact = await run.store_artifact("out.txt", f"result {i}".encode())
            ids.append(run.run_id)
        await hub.wait_for_projections()
        print(json.dumps({"runs": ids, "artifact": str(artifact.artifact_id)}))

anyio.run(main)
"""


def test_runs_prompts_and_agents_over_http_and_cli(
    up: tuple[str, subprocess.Popen[str], Path],
) -> None:
    url, _, home = up
    api = local_api(url, home)
    run = python(SCRIPT, cwd=home, timeout=120)
    assert run.returncode == 0, run.stderr
    made = json.loads(run.stdout.strip().splitlines()[-1])
    runs = made["runs"]

    listed = api.get("/v1/runs", params={"agent_id": "writer", "limit": 2}).json()
    assert [r["run_id"] for r in listed["runs"]] == runs[:0:-1]
    rest = api.get("/v1/runs", params={"agent_id": "writer", "before": listed["next"]}).json()
    assert [r["run_id"] for r in rest["runs"]] == runs[:1] and rest["next"] is None
    by_cursor = api.get(
        "/v1/runs", params={"agent_id": "writer", "cursor": listed["next_cursor"]}
    ).json()
    assert by_cursor["runs"] == rest["runs"] and by_cursor["next_cursor"] is None
    detail = api.get(f"/v1/runs/{runs[0]}").json()
    assert detail["run"]["status"] == "success" and detail["run"]["input"] == {"n": 0}
    assert [m["name"] for m in detail["metrics"]] == ["latency"]
    artifact_url = detail["artifacts"][0]["url"]
    assert Path(artifact_url.removeprefix("file://")).read_bytes() == b"result 0"
    artifact = api.get(f"/v1/artifacts/{made['artifact']}").json()
    assert artifact["name"] == "out.txt" and artifact["size"] == len(b"result 2")

    groups = api.get(
        "/v1/metrics/aggregate",
        params={"metric": "latency", "agent_id": "writer", "group_by": "prompt_version"},
    ).json()["groups"]
    assert [(g["group"], g["count"]) for g in groups] == [("v1", 1), ("v2", 2)]
    assert groups[1]["mean"] == pytest.approx(0.25)

    prompt = api.get("/v1/prompts/writer").json()
    assert prompt["version"] == "v2" and prompt["content"] == "Be brief.\nBe kind."
    versions = api.get("/v1/prompts/writer/versions").json()["versions"]
    assert [(v["version"], v["labels"]) for v in versions] == [("v1", []), ("v2", ["current"])]
    assert api.get("/v1/prompts/writer", params={"version": "v1"}).json()["content"] == (
        "Be brief."
    )

    agent = api.get("/v1/agents/writer").json()
    assert (agent["run_count"], agent["succeeded"], agent["success_rate"]) == (3, 3, 1.0)
    assert [a["agent_id"] for a in api.get("/v1/agents").json()["agents"]] == ["writer"]

    for path, status, kind in (
        ("/v1/runs/nope", 404, "NotFoundError"),
        ("/v1/artifacts/not-a-uuid", 400, "InputError"),
        ("/v1/prompts/nope", 404, "NotFoundError"),
        ("/v1/runs?status=finished", 400, "InputError"),
        ("/v1/metrics/aggregate?metric=latency&group_by=week", 400, "InputError"),
    ):
        response = api.get(f"{path}")
        assert (response.status_code, response.json()["error"]["type"]) == (status, kind), path

    out = agent_hub("runs", "list", "--agent", "writer", cwd=home)
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == runs[::-1]
    out = agent_hub("runs", "show", runs[1], cwd=home)
    assert json.loads(out.stdout)["run"]["prompt_version"] == "v2"
    out = agent_hub("runs", "aggregate", "latency", "--by", "prompt_version", cwd=home)
    assert out.stdout.splitlines()[0] == "group\tcount\tmean\tp50\tp95"
    assert out.stdout.splitlines()[2].startswith("v2\t2\t0.25")

    out = agent_hub("prompts", "show", "writer", cwd=home)
    assert out.stdout == "Be brief.\nBe kind.\n"
    out = agent_hub("prompts", "rollback", "writer", "v1", cwd=home)
    assert out.returncode == 0 and out.stdout.strip() == "writer: current -> v1"
    out = agent_hub("prompts", "versions", "writer", cwd=home)
    assert [line.split("\t")[2] for line in out.stdout.splitlines()] == ["current", ""]
    out = agent_hub("prompts", "diff", "writer", "v1", "v2", cwd=home)
    assert "+Be kind." in out.stdout
    out = agent_hub("prompts", "set", "writer", "v1", "--content", "Other text", cwd=home)
    assert out.returncode == 1
    assert "version 'v1' already exists with different content" in out.stderr

    out = agent_hub("agents", "show", "writer", cwd=home)
    assert json.loads(out.stdout)["run_count"] == 3
    out = agent_hub("sync", cwd=home)
    assert out.returncode == 0 and out.stdout.strip() == "nothing to sync"
