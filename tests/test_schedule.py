"""Schedule slots and catch-up (conveyor.schedule, pure): the rules every scheduler computes
alike, so that a slot can be taken once under a unique constraint."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import InvalidInput
from conveyor.schedule import MAX_CATCH_UP, SKIP_GRACE, Schedule, due_slots

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# 2000-01-01 to 2100-01-01, in epoch seconds
instants = st.floats(min_value=946_684_800, max_value=4_102_444_800, allow_nan=False)
expressions = st.sampled_from(["0 2 * * *", "30 2 * * *", "*/15 * * * *", "0 */6 * * *",
                               "0 0 1 * *", "@daily", "@hourly", "5 4 * * 0"])
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=zone).timestamp()


def local(slot: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(slot, zone).isoformat()


@settings(max_examples=150, deadline=None)
@given(expressions, zones, instants)
def test_cron_slots_come_after_and_in_order(expression: str, zone: str, now: float) -> None:
    schedule = Schedule("s", "t", cron=expression, tz=zone)
    slots = schedule.slots_after(now)
    first, second, third = next(slots), next(slots), next(slots)
    assert now < first < second < third


@settings(max_examples=150, deadline=None)
@given(st.floats(min_value=1, max_value=86_400 * 7, allow_nan=False), instants)
def test_every_slots_are_the_same_for_every_scheduler(every: float, now: float) -> None:
    """Slots are multiples of the interval since the epoch: two schedulers looking at
    different moments agree on every slot they both see."""
    schedule = Schedule("s", "t", every=every)
    first = schedule.next_slot(now)
    assert now < first <= now + every
    later = schedule.next_slot(first - every / 2)  # another scheduler, another moment
    assert later == first


def test_a_daily_slot_in_the_skipped_hour_runs_once_in_spring() -> None:
    schedule = Schedule("s", "t", cron="30 2 * * *", tz="Europe/Berlin")
    slots = schedule.slots_after(at(BERLIN, 2026, 3, 28, 12, 0))
    assert [local(next(slots), BERLIN) for _ in range(3)] == [
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that day: once, at 03:00
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_a_daily_slot_in_the_repeated_hour_runs_once_in_autumn() -> None:
    schedule = Schedule("s", "t", cron="30 2 * * *", tz="Europe/Berlin")
    slots = schedule.slots_after(at(BERLIN, 2026, 10, 24, 12, 0))
    assert [local(next(slots), BERLIN) for _ in range(2)] == [
        "2026-10-25T02:30:00+02:00",  # the first 02:30; the repeated one does not run again
        "2026-10-26T02:30:00+01:00",
    ]


def test_new_york_daily_slots_keep_their_wall_clock_time_across_dst() -> None:
    schedule = Schedule("s", "t", cron="0 9 * * *", tz="America/New_York")
    slots = schedule.slots_after(at(NEW_YORK, 2026, 3, 7, 0, 0))  # clocks go forward on the 8th
    times = [datetime.fromtimestamp(next(slots), NEW_YORK) for _ in range(3)]
    assert [t.hour for t in times] == [9, 9, 9]
    assert times[1].timestamp() - times[0].timestamp() == 23 * 3600  # the short day


def test_aliases_are_spelt_out() -> None:
    assert Schedule("s", "t", cron="@daily").expression == "0 0 * * *"
    assert Schedule("s", "t", cron="  @Hourly ").expression == "0 * * * *"
    assert Schedule("s", "t", cron="0  2 * * *").expression == "0 2 * * *"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cron": "61 * * * *"}, "invalid cron expression '61 \\* \\* \\* \\*'"),
    ({"cron": "@sometimes"}, "invalid cron expression"),
    ({"cron": ""}, "cron must be a cron expression"),
    ({}, "give cron=... or every=..., exactly one"),
    ({"cron": "@daily", "every": 60}, "give cron=... or every=..., exactly one"),
    ({"every": 0}, "every must be a number of seconds >= 1"),
    ({"every": 0.5}, "every must be a number of seconds >= 1"),
    ({"every": float("inf")}, "every must be a number of seconds >= 1"),
    ({"every": "60"}, "every must be a number of seconds >= 1"),
    ({"every": True}, "every must be a number of seconds >= 1"),
    ({"every": 60, "tz": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"every": 60, "catch_up": "some"}, "catch_up must be one of skip, once, all"),
    ({"every": 60, "max_lateness": -1}, "max_lateness must be a number of seconds >= 0"),
])
def test_a_bad_schedule_is_refused_naming_it(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=f"schedule 'nightly': {message}"):
        Schedule("nightly", "t", **kwargs)  # type: ignore[arg-type]


NOW = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp()


def minutely(catch_up: str, max_lateness: float | None = None) -> Schedule:
    return Schedule("m", "t", every=60, catch_up=catch_up,  # type: ignore[arg-type]
                    max_lateness=max_lateness)


def test_on_time_every_policy_runs_the_current_slot() -> None:
    last = NOW - 60  # the slot before the current one was taken
    for policy in ("skip", "once", "all"):
        assert due_slots(minutely(policy), last, NOW) == [NOW - 30]


def test_nothing_is_due_before_the_next_slot() -> None:
    for policy in ("skip", "once", "all"):
        assert due_slots(minutely(policy), NOW - 30, NOW) == []


def test_after_an_outage_of_ten_slots_each_policy_runs_what_it_says() -> None:
    last = NOW - 30 - 600  # taken ten slots ago
    # skip: the current slot, if on time; none of the ten left over
    assert due_slots(minutely("skip"), last, NOW) == [NOW - 30]
    late = Schedule("d", "t", every=3600, catch_up="skip")
    hour = NOW - 30  # 12:00, a slot of `late`
    assert due_slots(late, hour - 3 * 3600, hour + 1800) == []  # its current slot: 30 min old
    assert due_slots(late, hour - 3 * 3600, hour + SKIP_GRACE) == [hour]
    # once: one run for the nine missed slots (the latest of them), and the current one
    assert due_slots(minutely("once"), last, NOW) == [NOW - 90, NOW - 30]
    # ... and when the current slot is no longer on time, one run in all
    late_once = Schedule("d", "t", every=3600, catch_up="once")
    assert due_slots(late_once, hour - 3 * 3600, hour + 1800) == [hour]
    assert due_slots(minutely("all"), last, NOW) == [NOW - 30 - 60 * k for k in range(9, -1, -1)]


def test_max_lateness_drops_slots_later_than_it_whatever_the_policy() -> None:
    last = NOW - 30 - 600
    assert due_slots(minutely("all", max_lateness=150), last, NOW) == [
        NOW - 150, NOW - 90, NOW - 30]
    assert due_slots(minutely("once", max_lateness=10), last, NOW) == []
    assert due_slots(minutely("once", max_lateness=100), last, NOW) == [NOW - 90, NOW - 30]


def test_catch_up_all_is_bounded() -> None:
    day_ago = NOW - 86_400
    slots = due_slots(minutely("all"), day_ago, NOW)
    assert len(slots) == MAX_CATCH_UP and slots[-1] == NOW - 30  # the latest ones


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["skip", "once", "all"]), instants,
       st.floats(min_value=0, max_value=100_000, allow_nan=False),
       st.floats(min_value=1, max_value=5_000, allow_nan=False))
def test_due_slots_are_after_the_last_and_not_in_the_future(
        policy: str, now: float, gap: float, every: float) -> None:
    schedule = Schedule("s", "t", every=every, catch_up=policy)  # type: ignore[arg-type]
    last = now - gap
    slots = due_slots(schedule, last, now)
    assert all(last < slot <= now for slot in slots)
    assert slots == sorted(set(slots))
    if policy == "skip":
        assert len(slots) <= 1
    if policy == "once":
        assert len(slots) <= 2
