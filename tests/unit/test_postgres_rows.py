"""Rows of the Postgres log read as records: header sets filled in and shared, gaps."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.infra.log.postgres_rows import HeaderSets, records_of
from hub.infra.ports import TopicPartition

A = (("hub-type", b"X"), ("hub-tenant", b"t1"))
B = (("hub-type", b"X"), ("hub-tenant", b"t2"))
TPS = [TopicPartition("t", 0), TopicPartition("t", 1)]


def row(i: int, offset: int, headers: Any) -> tuple[Any, ...]:
    keys = None if headers is None else [k for k, _ in headers]
    values = None if headers is None else [v for _, v in headers]
    return (i, offset, b"k", b"v%d" % offset, keys, values, 1_700_000_000_000 + offset)


def test_a_row_without_header_arrays_carries_the_set_the_read_expected() -> None:
    sets = HeaderSets()
    sets.usual = A
    positions = {tp: 0 for tp in TPS}
    rows = [row(1, 0, None), row(1, 1, B), row(1, 2, None), row(2, 0, [])]
    out, busy = records_of(rows, TPS, positions, 100, sets)
    assert [r.headers for r in out] == [A, B, A, ()]
    assert busy == set(TPS) and positions == {TPS[0]: 3, TPS[1]: 1}
    assert len(sets.usual) == 0  # the last record's set is what the next read expects
    assert sets.usual_arrays() == ([], [])


def test_a_header_set_is_built_once_and_shared() -> None:
    sets = HeaderSets()
    positions = {TPS[0]: 0}
    out, _ = records_of([row(1, o, B) for o in range(3)], TPS, positions, 100, sets)
    assert out[0].headers == B
    assert out[0].headers is out[1].headers is out[2].headers
    assert sets.usual is out[2].headers
    assert sets.usual_arrays() == (["hub-type", "hub-tenant"], [b"X", b"t2"])


def test_a_gap_within_a_read_holds_back_the_rest_of_its_partition() -> None:
    sets = HeaderSets()
    positions = {tp: 0 for tp in TPS}
    rows = [row(1, 0, A), row(1, 2, A), row(2, 0, A), row(2, 1, A)]
    out, _ = records_of(rows, TPS, positions, 100, sets)
    assert [(r.partition, r.offset) for r in out] == [(0, 0), (1, 0), (1, 1)]
    assert positions == {TPS[0]: 1, TPS[1]: 2}


def test_no_more_than_max_records_and_rows_before_the_position_are_skipped() -> None:
    sets = HeaderSets()
    positions = {TPS[0]: 2}
    rows = [row(1, o, A) for o in range(10)]
    out, _ = records_of(rows, TPS, positions, 3, sets)
    assert [r.offset for r in out] == [2, 3, 4] and positions[TPS[0]] == 5


def _one_row_at_a_time(
    rows: list[tuple[Any, ...]], positions: dict[TopicPartition, int], max_records: int
) -> list[tuple[int, int]]:
    """What a read must return, as the rule says it row by row (the reference)."""
    out: list[tuple[int, int]] = []
    stopped: set[int] = set()
    for i, offset, *_ in rows:
        tp = TPS[i - 1]
        expected = positions.get(tp)
        if expected is None or offset < expected or i in stopped:
            continue
        if len(out) >= max_records:
            break
        if offset > expected and out and out[-1][0] == i:
            stopped.add(i)
            continue
        positions[tp] = offset + 1
        out.append((i, offset))
    return out


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(
        st.lists(st.integers(0, 12), unique=True, max_size=8).map(sorted), min_size=2, max_size=2
    ),
    starts=st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=2, max_size=2),
    max_records=st.integers(0, 12),
)
def test_runs_read_at_once_return_what_the_row_by_row_rule_does(
    runs: list[list[int]], starts: list[int | None], max_records: int
) -> None:
    rows = [row(i, o, A) for i, offsets in enumerate(runs, start=1) for o in offsets]
    positions = {tp: s for tp, s in zip(TPS, starts, strict=True) if s is not None}
    expected_positions = dict(positions)
    expected = _one_row_at_a_time(rows, expected_positions, max_records)
    out, _ = records_of(rows, TPS, positions, max_records, HeaderSets())
    assert [(r.partition + 1, r.offset) for r in out] == expected
    assert positions == expected_positions
    assert all(r.headers == A and r.value == b"v%d" % r.offset for r in out)
