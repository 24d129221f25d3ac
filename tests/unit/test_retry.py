"""Backoff and warnings that do not flood the log."""

from __future__ import annotations

import pytest


def test_retry_warnings_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 11, finding 4): the archiver logged 591 warnings in 44 s while
    Postgres was down; a kind of warning is now written once per interval, with a count."""
    import consumers.retry as retry

    clock = [100.0]
    monkeypatch.setattr("consumers.retry.time.monotonic", lambda: clock[0])
    written: list[tuple[str, dict[str, object]]] = []

    class Sink:
        def warning(self, event: str, **fields: object) -> None:
            written.append((event, fields))

    log = retry.RateLimitedWarnings(Sink(), interval=30)
    for _ in range(400):  # 50 s of retries, eight a second
        log.warning("archiver.retry", step="fetch", error="down")
        log.warning("archiver.retry", step="prepare", error="down")
        clock[0] += 0.125
    assert [(e, f["step"], f.get("repeats_held_back")) for e, f in written] == [
        ("archiver.retry", "fetch", None),
        ("archiver.retry", "prepare", None),
        ("archiver.retry", "fetch", 239),
        ("archiver.retry", "prepare", 239),
    ]
