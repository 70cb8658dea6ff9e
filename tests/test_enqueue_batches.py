"""Batches of jobs take fast paths (issue 13): enqueue_many admits a batch over its columns,
prepare copies a template job, and the batch statement sends a column with one value in every
row once. None of it may change what is stored or what is refused: a batch stores exactly what
enqueueing its jobs one at a time stores, and a batch holding a bad job is refused with the
message that job gets on its own."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from databases import query
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import Conveyor, InvalidInput, NewJob
from conveyor.options import check_prepared, plainly_prepared
from conveyor.serializer import plainly_storable

STORED = ("task", "queue", "state", "priority", "args", "kwargs", "unique_key", "max_attempts",
          "backoff", "timeout", "soft_timeout", "limit_key")


def _anything(*args: Any, **kwargs: Any) -> None:
    return None


def _rated(tenant: str, extra: Any = None) -> None:
    return None


def _tenant(tenant: str, **_: Any) -> str:
    return tenant


@pytest.fixture
def bapp(db_url: str) -> Any:
    app = Conveyor(db_url)
    app.task(name="b.any")(_anything)
    app.task(name="b.rated", rate_limit="5/s", limit_key=_tenant)(_rated)
    yield app
    app.close()


def _stored(app: Conveyor, job_id: int) -> dict[str, Any]:
    """A job's row as stored, with its run_at as stored and relative to its enqueue (one of
    them is the same for the same job enqueued twice)."""
    [row] = query(app.url, f"SELECT {', '.join(STORED)}, run_at, run_at - enqueued_at FROM "
                           "conveyor_jobs WHERE id = ?", [job_id])
    stored = dict(zip(STORED, row[:-2], strict=True))
    stored["run_at"], stored["due_after"] = row[-2], round(row[-1], 3)
    return stored


def _same(first: dict[str, Any], second: dict[str, Any]) -> bool:
    due = "run_at" if first["run_at"] == second["run_at"] else "due_after"
    return ({k: v for k, v in first.items() if k not in ("run_at", "due_after")}
            == {k: v for k, v in second.items() if k not in ("run_at", "due_after")}
            and first[due] == second[due])


def _jobs(app: Conveyor) -> list[NewJob]:
    """Prepared jobs of every kind a batch may hold, with arguments JSON can carry."""
    task, rated = app.tasks["b.any"], app.tasks["b.rated"]
    at = datetime(2100, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return [
        task.prepare(),
        task.prepare(1, -2**63, 2**63 - 1, 0.1, 1e-308, -0.0, True, None),
        task.prepare("ascii", "é☃ 日本 \U0001f600", "tab\tquote\"backslash\\", "'"),
        task.prepare([1, [2, [3]]], {"a": {"b": [None, {}]}}, key="value", other=[]),
        task.options(priority=-1000, max_attempts=1).prepare(),
        task.options(priority=1000, max_attempts=1000, queue="q.other:x-1").prepare(7),
        task.options(backoff=2, timeout=3.5, soft_timeout=1).prepare(),
        task.options(timeout=None, soft_timeout=None).prepare(),  # no limits: inf stored
        task.options(delay=timedelta(minutes=5)).prepare(),
        task.options(at=at).prepare(),
        rated.prepare("acme"),
        rated.prepare(tenant="globex"),
        rated.options(limit_key="given").prepare("ignored"),
        task.prepare("x" * 10_000),
    ]


def test_a_batch_stores_what_one_at_a_time_stores(bapp: Conveyor) -> None:
    jobs = _jobs(bapp)
    batched = bapp.enqueue_many(jobs)
    alone = [bapp.enqueue_many([job])[0] for job in jobs]
    for job, mine, single in zip(jobs, batched, alone, strict=True):
        assert _same(_stored(bapp, mine.id), _stored(bapp, single.id)), job
        assert mine.record == bapp.fetch_record(mine.id)  # the records returned, too
        assert mine.record.state == single.record.state
    # What the arguments decode to is what was given.
    assert batched[1].args == [1, -2**63, 2**63 - 1, 0.1, 1e-308, -0.0, True, None]
    assert batched[2].args == ["ascii", "é☃ 日本 \U0001f600", "tab\tquote\"backslash\\", "'"]
    assert batched[3].kwargs == {"key": "value", "other": []}
    assert math.isinf(_stored(bapp, batched[7].id)["timeout"])


def test_columns_alike_and_unlike_store_alike(bapp: Conveyor) -> None:
    """A column with one value in every row is sent once: batches where each column is alike,
    and where each differs in one job only, store what their jobs store one at a time."""
    base = NewJob("b.any", "default", "[]", "{}", backoff=1.5, timeout=2.0, run_at=4.1e9)
    variants: list[dict[str, Any]] = [
        dict(task="b.rated", limit_key="k"), dict(queue="other"), dict(priority=3),
        dict(args_json="[1]"), dict(kwargs_json='{"a":1}'), dict(max_attempts=9),
        dict(backoff=2.5), dict(timeout=math.inf), dict(soft_timeout=1.0), dict(run_at=None),
        dict(delay=60.0)]
    for changes in [{}, *variants]:
        jobs = [base, base, dataclasses.replace(base, **changes), base]
        batched = bapp.enqueue_many(jobs)
        for job, stored in zip(jobs, batched, strict=True):
            [single] = bapp.enqueue_many([job])
            assert _same(_stored(bapp, stored.id), _stored(bapp, single.id)), changes


def test_numbers_of_both_kinds_in_one_column(bapp: Conveyor) -> None:
    """Hand-built jobs may give 2 where others give 2.5 (a database driver sends a column as
    an array of one type)."""
    jobs = [NewJob("b.any", "default", "[]", "{}", backoff=2, timeout=3, run_at=4_000_000_000),
            NewJob("b.any", "default", "[]", "{}", backoff=2.5, timeout=math.inf,
                   run_at=4_000_000_000.5)]
    first, second = bapp.enqueue_many(jobs)
    assert (_stored(bapp, first.id)["backoff"], _stored(bapp, second.id)["backoff"]) == (2, 2.5)
    assert bapp.fetch_record(second.id).run_at == 4_000_000_000.5  # type: ignore[union-attr]


BAD_JOBS = [
    (dict(priority=True), "priority must be an int from -1000 to 1000"),
    (dict(priority=1001), "priority must be an int from -1000 to 1000"),
    (dict(max_attempts=0), "max_attempts must be an int from 1 to 1000"),
    (dict(max_attempts=2.0), "max_attempts must be an int"),
    (dict(queue="bad queue"), "may only contain letters"),
    (dict(task=""), "task name must not be empty"),
    (dict(unique_key=""), "unique_key must be a non-empty str"),
    (dict(limit_key=5), "limit_key must give a str"),
    (dict(backoff=-1.0), "backoff must be a number of seconds >= 0"),
    (dict(timeout=0.0), "timeout=0.0 is not a number of seconds > 0"),
    (dict(timeout=True), "timeout=True is not a number"),
    (dict(soft_timeout=math.nan), "soft_timeout=nan is not a number"),
    (dict(delay=-5.0), "delay must be a number of seconds >= 0"),
    (dict(run_at=1e300), "years 1..9999"),
    (dict(args_json="[\"\x00\"]"), "NUL character"),
    (dict(kwargs_json='{"a":"\ud800"}'), "lone surrogate"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_JOBS)
def test_a_bad_job_in_a_batch_is_refused_as_on_its_own(
    bapp: Conveyor, changes: dict[str, Any], message: str
) -> None:
    good = bapp.tasks["b.any"].prepare(1)
    bad = dataclasses.replace(good, **changes)
    with pytest.raises(InvalidInput, match=message) as alone:
        bapp.enqueue_many([bad])
    with pytest.raises(InvalidInput, match=message) as in_batch:
        bapp.enqueue_many([good, good, bad, good])
    # The same message; where it names the job, it names the one in the batch.
    assert str(in_batch.value) == str(alone.value).replace("item 0", "item 2")
    assert not any(any(states.values()) for states in bapp.inspector.count_by_state().values())


def test_a_batch_over_the_size_limit_names_the_job(db_url: str) -> None:
    app = Conveyor(db_url, max_payload_bytes=1024)
    try:
        task = app.task(name="b.any")(_anything)
        big = task.prepare("é" * 300)  # 600 bytes of UTF-8: fits
        with pytest.raises(InvalidInput, match=r"enqueue_many item 1.*over the limit of 1\.0 KiB"):
            app.enqueue_many([big, dataclasses.replace(big, args_json='["' + "é" * 600 + '"]')])
        assert len(app.enqueue_many([big, big])) == 2
    finally:
        app.close()


def test_prepare_makes_what_the_constructor_makes(bapp: Conveyor) -> None:
    job = bapp.tasks["b.any"].options(priority=3, delay=5).prepare(1, k="v")
    built = NewJob("b.any", "default", "[1]", '{"k":"v"}', priority=3, delay=5.0,
                   defaulted=frozenset({"queue", "max_attempts"}))
    assert job == built and hash(job) == hash(built)
    # (A frozenset's repr lists its items in an order that depends on the string hash seed and
    # on the order they were added: the same set, built two ways, may print two ways.)
    assert repr(job) == repr(dataclasses.replace(built, defaulted=job.defaulted))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.priority = 4  # type: ignore[misc]
    copied = job.with_arguments("[2]", "{}", "key")
    assert copied == dataclasses.replace(job, args_json="[2]", kwargs_json="{}", limit_key="key")
    assert job.args_json == "[1]"  # the template is left as it was


# -- the fast checks never accept what the job-by-job checks refuse ---------------------------

NUMBERS = st.one_of(st.none(), st.booleans(), st.integers(-2000, 2000),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e300, -1.0]),
                    st.just([1]))
TEXTS = st.one_of(st.none(), st.integers(), st.just(["x"]), st.sampled_from(
    ["", "ok", "bad name", "a" * 300, "\x00", "\ud800", "é", "x.y:z-1"]))


@st.composite
def hand_built(draw: st.DrawFn) -> NewJob:
    """A NewJob built by hand, with values of every type, valid or not."""
    fields: dict[str, Any] = {
        name: draw(TEXTS) for name in ("task", "queue", "args_json", "kwargs_json",
                                       "unique_key", "limit_key")}
    fields.update({name: draw(NUMBERS) for name in ("priority", "max_attempts", "run_at",
                                                    "delay", "backoff", "timeout",
                                                    "soft_timeout")})
    return NewJob(**fields)


def _refused(job: NewJob) -> bool:
    try:
        check_prepared(job, "item")
    except (InvalidInput, TypeError, OverflowError):
        return True
    return False


def _payload_refused(job: NewJob, max_bytes: int) -> bool:
    texts = (job.args_json, job.kwargs_json)
    if not all(isinstance(text, str) for text in texts):
        return True
    try:
        size = sum(len(text.encode("utf-8")) for text in texts)
    except UnicodeEncodeError:
        return True
    return "\x00" in "".join(texts) or size > max_bytes


@settings(max_examples=300, deadline=None)
@given(st.lists(hand_built(), min_size=1, max_size=4), st.sampled_from([4, 64, 1024]))
def test_the_fast_checks_accept_only_what_the_job_by_job_checks_accept(
    jobs: list[NewJob], max_bytes: int
) -> None:
    if plainly_prepared(jobs):
        assert not any(map(_refused, jobs))
    if plainly_storable([job.args_json for job in jobs], [job.kwargs_json for job in jobs],
                        max_bytes):
        assert not any(_payload_refused(job, max_bytes) for job in jobs)


def test_the_fast_checks_accept_what_prepare_makes(bapp: Conveyor) -> None:
    jobs = _jobs(bapp)
    assert plainly_prepared(jobs)
    assert plainly_storable([j.args_json for j in jobs], [j.kwargs_json for j in jobs], 2**22)


def test_a_batch_insert_answers_as_a_list_of_its_results(bapp: Conveyor) -> None:
    """The results of a batch insert are made when read (records.StoredBatch): read any way
    a list is, they are what the database holds, in the batch's order."""
    jobs = [NewJob("b.any", "default", f"[{index}, 1]", "{}") for index in range(5)]
    results = bapp.backend.enqueue_many(jobs)
    assert len(results) == 5 and all(result.created for result in results)
    ids = [result.record.id for result in results]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [r.record.id for r in results[1:3]] == ids[1:3]
    assert results[-1].record.id == ids[4]
    for result, job in zip(results, jobs, strict=True):
        assert result.record == bapp.fetch_record(result.record.id)
        assert result.record.args_json == job.args_json
    with pytest.raises(IndexError):
        results[5]
    handles = bapp.enqueue_many([bapp.tasks["b.any"].prepare(2, 2) for _ in range(3)])
    assert [job.id for job in handles] == [handle.refresh().id for handle in handles]
    assert all(job.state.value == "queued" and job.args == [2, 2] for job in handles)
