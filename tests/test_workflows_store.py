"""What a parent's end does to its children, at the storage layer on both backends: every way a
job ends (an ack, a retry or a hand-back that a cancel turned into an end, a rescue) releases
them in its own transaction, an admin retry of parents undoes exactly what their failure did,
and a parent deleted after it ended cannot break the release of its siblings' child."""

from __future__ import annotations

import time

import pytest
from helpers import claim

import conveyor
from conveyor import Conveyor, JobState
from conveyor.backends.base import Backend, Lease
from conveyor.job import JobError
from conveyor.outcomes import Failed, Retry, Snoozed, Succeeded


def _claim_one(backend: Backend, job_id: int) -> int:
    """Claim job `job_id` (the only queued job in these tests); returns its lease token."""
    claimed = {job.id: job.token for job in claim(backend, "w1", ["default"], 10, lease=30.0)}
    assert list(claimed) == [job_id], claimed
    return claimed[job_id]


def _claim_all(backend: Backend, job_ids: list[int]) -> dict[int, int]:
    claimed = {job.id: job.token for job in claim(backend, "w1", ["default"], 10, lease=30.0)}
    assert sorted(claimed) == sorted(job_ids), claimed
    return claimed


def _fail(backend: Backend, job_ids: list[int]) -> None:
    """Claim these jobs and fail each for good."""
    tokens = _claim_all(backend, job_ids)
    for job_id in job_ids:
        now = time.time()
        assert _ack(backend, Failed(job_id, tokens[job_id], 1, now, now, JobError("E", "x")))


def _ack(backend: Backend, outcome: object) -> bool:
    accepted, _ = backend.ack_and_claim([outcome], "w1", (), 0, 30.0)  # type: ignore[list-item]
    return accepted == [True]


def _state(app: Conveyor, job_id: int) -> JobState:
    return app.get_job(job_id).state


@pytest.mark.parametrize("end", ["retry", "snooze", "hand-back"])
def test_a_cancel_that_ends_a_parent_on_its_way_back_releases_its_children(
        wapp: Conveyor, end: str) -> None:
    node = wapp.tasks["w.node"]
    parent = node.enqueue(1)
    child = node.options(depends_on=[parent]).enqueue(2)
    backend = wapp.backend
    token = _claim_one(backend, parent.id)
    assert wapp.cancel(parent.id) is JobState.RUNNING  # asked to stop while it runs
    now = time.time()
    error = JobError("ValueError", "boom")
    if end == "retry":
        assert _ack(backend, Retry(parent.id, token, 1, now, now, error, now + 1))
    elif end == "snooze":
        assert _ack(backend, Snoozed(parent.id, token, 1, now, now, error, 1.0))
    else:
        assert backend.release([Lease(parent.id, token)]) == 1
    assert _state(wapp, parent.id) is JobState.CANCELLED
    assert _state(wapp, child.id) is JobState.CANCELLED  # released, not left waiting


def test_retrying_both_failed_members_of_a_chord_brings_its_callback_back(
        wapp: Conveyor) -> None:
    node, total = wapp.tasks["w.node"], wapp.tasks["w.total"]
    flow = conveyor.chord([node.s(1), node.s(2)], total.s()).enqueue()
    a, b, callback = (job.id for job in flow.jobs)
    backend = wapp.backend
    _fail(backend, [a, b])
    assert _state(wapp, callback) is JobState.CANCELLED
    assert wapp.retry([a]) == [a]
    assert _state(wapp, callback) is JobState.CANCELLED  # b's failure still holds it
    assert wapp.retry([b]) == [b]
    assert _state(wapp, callback) is JobState.WAITING
    assert wapp.get_job(callback).record.pending_parents == 2
    tokens = _claim_all(backend, [a, b])
    for member, value in ((a, "1"), (b, "2")):
        now = time.time()
        assert _ack(backend, Succeeded(member, tokens[member], 2, now, now, value))
    assert _state(wapp, callback) is JobState.QUEUED
    assert wapp.get_job(callback).args == [[1, 2]]


def test_retrying_a_cancelled_callback_waits_for_its_retried_parent(
        wapp: Conveyor) -> None:
    """Retried by hand, a job a failure cancelled runs with what its parents give it: it
    waits for a parent retried before it, and is fed a failed one's error."""
    node, total = wapp.tasks["w.node"], wapp.tasks["w.total"]
    flow = conveyor.chord([node.s(1), node.s(2)], total.s()).enqueue()
    a, b, callback = (job.id for job in flow.jobs)
    backend = wapp.backend
    _fail(backend, [a, b])
    assert wapp.retry([a]) == [a]
    assert wapp.retry([callback]) == [callback]
    record = wapp.get_job(callback).record
    assert (record.state, record.pending_parents) == (JobState.WAITING, 1)
    token = _claim_one(backend, a)
    now = time.time()
    assert _ack(backend, Succeeded(a, token, 2, now, now, "5"))
    assert _state(wapp, callback) is JobState.QUEUED
    assert wapp.get_job(callback).args == [
        [5, {"job": b, "state": "failed", "error": {"type": "E", "message": "x"}}]]


def test_a_fed_parent_deleted_after_it_ended_is_fed_as_deleted(wapp: Conveyor) -> None:
    node, total = wapp.tasks["w.node"], wapp.tasks["w.total"]
    flow = conveyor.chord([node.s(1), node.s(2)], total.s()).enqueue(on_parent_failure="run")
    a, b, callback = (job.id for job in flow.jobs)
    backend = wapp.backend
    tokens = _claim_all(backend, [a, b])
    now = time.time()
    assert _ack(backend, Succeeded(a, tokens[a], 1, now, now, "1"))
    # The pruner keeps a job whose result a waiting job is still to be fed...
    assert wapp.prune({"succeeded": 0}) == {JobState.SUCCEEDED: 0}
    assert wapp.delete([a]) == [a]  # ... but a job deleted by hand is gone.
    assert _ack(backend, Succeeded(b, tokens[b], 1, now, now, "2"))
    [[first, second]] = wapp.get_job(callback).args
    assert first["state"] == "deleted" and second == 2
