from __future__ import annotations

import time

from schemas.ids import uuid7, uuid7_time_ms


def test_uuid7_is_version_7_rfc_variant_and_time_ordered() -> None:
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert before <= uuid7_time_ms(ids[0]) <= uuid7_time_ms(ids[-1]) <= after + 5
