"""What a Postgres log consumer concludes from the appends' notifications: when a read
could find nothing new, and when it must read."""

from __future__ import annotations

import time

import pytest

from hub.infra.log.postgres_tail import TailKnowledge, notify_payload
from hub.infra.ports import TopicPartition

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


def test_the_payload_names_each_partitions_new_end() -> None:
    assert notify_payload("t", {1: 7, 0: 3}) == "t|0:3,1:7"


def test_it_reads_until_a_complete_read_and_then_only_for_news() -> None:
    tail = TailKnowledge()
    assert tail.worth_reading()  # nothing known yet
    tail.read(tail.generation, complete=False)  # a partition came back full
    assert tail.worth_reading()
    tail.read(tail.generation, complete=True)
    assert not tail.worth_reading()
    positions = {T0: 3, T1: 7}
    assert not tail.notified("t|0:3,1:7", positions)  # records already read
    assert not tail.notified("t|0:2", positions)
    assert not tail.notified("other|0:99", positions)  # not assigned here
    assert not tail.notified("t|5:99", positions)
    assert not tail.worth_reading()
    assert tail.notified("t|0:3,1:8", positions)
    assert tail.worth_reading()


@pytest.mark.parametrize("payload", ["t|0", "t", "t|x:1", "t|0:y"])
def test_a_payload_without_ends_or_not_ours_makes_it_read(payload: str) -> None:
    tail = TailKnowledge()
    tail.read(tail.generation, complete=True)
    assert tail.notified(payload, {T0: 3})
    assert tail.worth_reading()


def test_news_that_arrive_during_a_read_are_not_lost() -> None:
    tail = TailKnowledge()
    started = tail.generation
    assert tail.notified("t|0:9", {T0: 3})  # arrives while the read runs
    tail.read(started, complete=True)  # that read may have ended before offset 8
    assert tail.worth_reading()
    tail.read(tail.generation, complete=True)
    assert not tail.worth_reading()


def test_forget_and_the_poll_interval_make_it_read() -> None:
    tail = TailKnowledge(poll_s=0.05)
    tail.read(tail.generation, complete=True)
    tail.forget()
    assert tail.worth_reading()
    tail.read(tail.generation, complete=True)
    assert not tail.worth_reading()
    time.sleep(0.06)
    assert tail.worth_reading()


def test_a_read_begun_before_a_forget_cannot_make_the_tail_known() -> None:
    """A seek during a read moves a position back: what that read found says nothing of
    the records from the new position, so the next fetch must read."""
    tail = TailKnowledge()
    generation = tail.generation  # a read begins
    tail.forget()  # a seek meanwhile
    tail.read(generation, complete=True)
    assert tail.worth_reading()
    tail.read(tail.generation, complete=True)  # a read begun after it
    assert not tail.worth_reading()
