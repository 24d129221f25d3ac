"""``agent-hub`` commands as a user types them (regressions for issue 11, findings 8 and
10): bad values are usage errors before anything runs, errors are one line, ``--json``
prints JSON, diffs keep their lines, rebuild returns once it has swapped in, and verify
shows its progress."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.conftest import agent_hub, python


def test_bad_values_are_usage_errors_before_anything_runs(tmp_path: Path) -> None:
    for args in (
        ("threads", "show", "t1", "--limit", "-5"),
        ("threads", "list", "--limit", "0"),
        ("sync", "--batch", "-1"),
        ("rebuild", "registry", "--grace", "-5"),
        ("rebuild", "registry", "--grace", "nan"),
        ("runs", "list", "--limit", "x"),
    ):
        done = agent_hub(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == "", args
        assert "use a" in done.stderr.splitlines()[-1], (args, done.stderr)
    assert not (tmp_path / ".agent_hub").exists()  # nothing was started


def test_prompts_from_the_shell(tmp_path: Path) -> None:
    (tmp_path / "v1.txt").write_text("You plan trips.")
    (tmp_path / "v2.txt").write_text("You plan trips well.\nBriefly.")
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00\x81 not text")
    assert agent_hub("prompts", "set", "p", "v1", "--file", "v1.txt", cwd=tmp_path).returncode == 0
    assert agent_hub("prompts", "set", "p", "v2", "--file", "v2.txt", cwd=tmp_path).returncode == 0
    bad = agent_hub("prompts", "set", "p", "v3", "--file", "binary.bin", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1] == (
        "agent-hub: error: --file: binary.bin is not UTF-8 text"
    )
    diff = agent_hub("prompts", "diff", "p", "v1", "v2", cwd=tmp_path)
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines() == [
        "--- p@v1",
        "+++ p@v2",
        "@@ -1 +1,2 @@",
        "-You plan trips.",
        "+You plan trips well.",
        "+Briefly.",
    ]


def test_sync_json_and_rebuild_verify(tmp_path: Path) -> None:
    synced = agent_hub("sync", "--json", cwd=tmp_path)
    assert synced.returncode == 0 and json.loads(synced.stdout) == {"forwarded": 0, "waiting": 0}

    made = python(
        "import anyio\nfrom hub import Hub\n"
        "async def main():\n"
        "    async with Hub.connect() as hub:\n"
        "        for i in range(20):\n"
        "            await hub.registry.register(f'agent-{i}')\n"
        "anyio.run(main)\n",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    started = time.monotonic()
    rebuilt = agent_hub("rebuild", "registry", "--grace", "600", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert time.monotonic() - started < 120  # returns after the swap, not after the grace
    assert "swapped in" in rebuilt.stdout and "running projector drops them" in rebuilt.stderr

    verified = agent_hub("verify", "registry", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "verify registry: 20/20 events" in verified.stderr  # progress
    assert all(line.split("\t")[2] == "same" for line in verified.stdout.splitlines())
