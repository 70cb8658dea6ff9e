"""The pure limit rules (conveyor.limits): rate strings, GCRA admission, concurrency and keys."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import InvalidInput
from conveyor.limits import (
    Rate,
    Waiting,
    admit,
    allocate,
    concurrency_limit,
    limit_key,
    parse_rate,
    room,
)


@pytest.mark.parametrize(("text", "count", "per"), [
    ("10/s", 10, 1.0), ("100/m", 100, 60.0), ("1000/h", 1000, 3600.0), ("5/10s", 5, 10.0),
    (" 3 / min ", 3, 60.0), ("2/day", 2, 86400.0), ("1/0.5s", 1, 0.5),
])
def test_rates_are_read_as_written(text: str, count: int, per: float) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.per, rate.burst) == (count, per, 1)
    assert rate.interval == per / count


@pytest.mark.parametrize(("text", "message"), [
    ("ten per second", "task 'reports': rate_limit 'ten per second' is not a rate; write it"),
    ("0/s", "would never let a job start; to stop a task's jobs for a while, pause its queue"),
    ("10/fortnight", "is not a rate"),
    ("10", "is not a rate"),
    ("-1/s", "is not a rate"),
    ("10/0s", "is out of range"),
    (10, "rate_limit must be a str such as '10/s', got 10"),
])
def test_bad_rates_are_refused_naming_the_task(text: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_rate(text, task="reports")
    assert message in str(raised.value)


def test_burst_is_checked() -> None:
    assert parse_rate("5/s", burst=5).tolerance == pytest.approx(0.8)
    for burst in (0, 6, True, 1.5):
        with pytest.raises(InvalidInput, match="burst must be an int from 1 to 5"):
            parse_rate("5/s", burst=burst)  # type: ignore[arg-type]


def test_a_fresh_limit_starts_one_then_waits_an_interval() -> None:
    rate = parse_rate("10/s")
    first = admit(rate, 0.0, 100.0, 5)
    assert first.started == 1 and first.tat == pytest.approx(100.1)
    assert first.next_at == pytest.approx(100.1)
    early = admit(rate, first.tat, 100.05, 5)
    assert early.started == 0 and early.tat == first.tat and early.next_at == first.next_at
    on_time = admit(rate, first.tat, first.next_at, 5)
    assert on_time.started == 1


def test_a_burst_starts_at_once_after_quiet_then_the_steady_rate() -> None:
    rate = parse_rate("5/s", burst=3)
    burst = admit(rate, 0.0, 10.0, 10)
    assert burst.started == 3
    assert admit(rate, burst.tat, 10.1, 10).started == 0
    assert admit(rate, burst.tat, 10.2, 10).started == 1


def starts_of(rate: Rate, asks: list[tuple[float, int]]) -> list[float]:
    """The start times GCRA grants to a run of asks (time step, jobs wanted)."""
    tat, now, starts = 0.0, 1_000.0, []
    for step, wanted in asks:
        now += step
        admission = admit(rate, tat, now, wanted)
        assert admission.started <= wanted
        starts += [now] * admission.started
        tat = admission.tat
        if admission.started < wanted:  # what was refused may start at next_at, not before
            early = admission.next_at - 1e-6
            assert admission.next_at == now or admit(rate, tat, early, 1).started == 0
            assert admit(rate, tat, admission.next_at, 1).started == 1
    return starts


asks = st.lists(st.tuples(st.floats(min_value=0, max_value=2, allow_nan=False),
                          st.integers(min_value=0, max_value=20)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=20), st.sampled_from([0.5, 1.0, 60.0]),
       st.integers(min_value=1, max_value=20), asks)
def test_no_window_of_the_period_holds_more_than_count_plus_burst(
        count: int, per: float, burst: int, steps: list[tuple[float, int]]) -> None:
    rate = Rate(count, per, min(burst, count))
    starts = starts_of(rate, steps)
    most = count + rate.burst - 1
    for i, first in enumerate(starts):
        inside = [t for t in starts[i:] if t < first + per - 1e-9]
        assert len(inside) <= most, (starts, rate)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0.001, max_value=0.2))
def test_a_busy_run_averages_the_rate(count: int, step: float) -> None:
    rate = Rate(count, 1.0)
    steps = [(step, 1_000)] * int(30 / step)
    starts = starts_of(rate, steps)
    span = len(steps) * step
    # Never above the rate; below it only by how late the asks come (each start may wait up
    # to one step past its time: a worker asks again at next_at to avoid that).
    assert span / (rate.interval + step) - 1 <= len(starts) <= count * span + 1


def test_asked_at_next_at_a_busy_run_keeps_the_rate_exactly() -> None:
    rate, tat, now, started = Rate(7, 1.0), 0.0, 500.0, 0
    while now < 530.0 - 1e-6:  # (float steps of 1/7 s)
        admission = admit(rate, tat, now, 100)
        started, tat, now = started + admission.started, admission.tat, admission.next_at
    assert started == 7 * 30


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None, 100_001])
def test_bad_concurrency_is_refused(value: Any) -> None:
    with pytest.raises(InvalidInput, match="task 'gpu': concurrency must be an int from 1"):
        concurrency_limit(value, where="task 'gpu': ")
    assert concurrency_limit(2, where="") == 2


@pytest.mark.parametrize(("value", "message"), [
    (42, "limit_key must give a str (e.g. a tenant's id), got int 42"),
    ("", "must be 1 to 200 printable characters"),
    ("a\nb", "printable"),
    ("x" * 201, "must be 1 to 200"),
])
def test_bad_limit_keys_are_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        limit_key(value, task="pipeline")
    assert "task 'pipeline': " in str(raised.value) and message in str(raised.value)
    assert limit_key("sub-01", task="pipeline") == "sub-01"


# -- allocation of free slots among waiting keys -----------------------------------------------

_groups = st.lists(st.tuples(
    st.sampled_from(["q1", "q2"]),
    st.integers(0, 3),  # head priority
    st.one_of(st.none(), st.integers(1, 4)),  # concurrency
    st.integers(0, 4),  # running
    st.one_of(st.none(), st.integers(1, 5)),  # rate count per second
    st.floats(0.0, 2.0),  # tat ahead of now
), max_size=8)


def _waiting(spec: list[tuple[str, int, int | None, int, int | None, float]],
             now: float) -> list[Waiting]:
    return [Waiting(queue, f"t{i}", "", None if count is None else Rate(count, 1.0),
                    now + ahead, concurrency, running)
            for i, (queue, priority, concurrency, running, count, ahead) in enumerate(spec)]


@settings(max_examples=300)
@given(_groups, st.integers(0, 12), st.dictionaries(st.sampled_from(["q1", "q2"]),
                                                    st.integers(0, 5)))
def test_allocation_stays_within_every_limit_and_shares_in_turn(
        spec: list[tuple[str, int, int | None, int, int | None, float]], free: int,
        queue_room: dict[str, int]) -> None:
    now = 1000.0
    groups = _waiting(spec, now)
    grants = allocate(groups, free, now, queue_room)
    rooms = [room(group, now, free) for group in groups]
    assert sum(grants) <= free
    for group, grant, allowed in zip(groups, grants, rooms, strict=True):
        assert 0 <= grant <= allowed
        if group.concurrency is not None and grant:  # (running may exceed a lowered limit)
            assert group.running + grant <= group.concurrency
        if group.rate is not None and grant:
            assert admit(group.rate, group.tat, now, grant).started == grant
    for queue, left in queue_room.items():
        assert sum(g for group, g in zip(groups, grants, strict=True)
                   if group.queue == queue) <= left
    # Round robin: a group given fewer than another could have had one more only if its
    # own limit or its queue's room stopped it.
    used = {queue: sum(g for group, g in zip(groups, grants, strict=True)
                       if group.queue == queue) for queue in queue_room}
    for i, group in enumerate(groups):
        blocked = grants[i] >= rooms[i] or used.get(group.queue, -1) >= queue_room.get(
            group.queue, 10**9)
        if not blocked:
            assert all(grants[j] <= grants[i] + 1 for j in range(len(groups)))
            assert sum(grants) == free or grants[i] == rooms[i]


def test_a_key_with_many_waiting_jobs_does_not_hold_back_one_with_few() -> None:
    now = 0.0
    many = Waiting("q", "t", "A", concurrency=100)
    few = Waiting("q", "t", "B", concurrency=100)
    assert allocate([many, few], 4, now, {}) == [2, 2]
    # In turn from the first given (the caller rotates which key comes first).
    assert allocate([few, many], 3, now, {}) == [2, 1]


def test_a_key_at_its_limit_leaves_its_turn_to_others() -> None:
    busy = Waiting("q", "t", "A", concurrency=2, running=2)
    idle = Waiting("q", "t", "B", concurrency=2)
    rated = Waiting("q", "r", "", rate=Rate(5, 1.0), tat=10.2)
    assert allocate([busy, idle, rated], 8, 10.0, {}) == [0, 2, 0]
    assert allocate([busy, idle, rated], 8, 10.0, {"q": 1}) == [0, 1, 0]
