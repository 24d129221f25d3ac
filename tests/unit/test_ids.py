from __future__ import annotations

import itertools
import time

from schemas.ids import uuid7, uuid7_time_ms


def test_uuid7_is_version_7_rfc_variant_and_time_ordered() -> None:
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert before <= uuid7_time_ms(ids[0]) <= uuid7_time_ms(ids[-1]) <= after + 5


def test_uuid7_many_makes_what_as_many_uuid7_calls_would() -> None:
    from schemas.ids import repeatable_ids, uuid7_many

    before = uuid7()
    many = uuid7_many(10_000)  # more than a millisecond's 4,096 counters
    after = uuid7()
    ordered = [before, *many, after]
    assert all(a.int < b.int for a, b in itertools.pairwise(ordered))
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in many)
    assert len({u.int & ((1 << 62) - 1) for u in many}) == len(many)  # random bits differ
    assert uuid7_many(0) == []
    with repeatable_ids(b"seed", 1_700_000_000_000):
        one_by_one = [uuid7() for _ in range(5)]
    with repeatable_ids(b"seed", 1_700_000_000_000):
        assert uuid7_many(5) == one_by_one
