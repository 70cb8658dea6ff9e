"""Many processes on one database; claims bounded by free slots; outcomes written in batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helpers import burst_dispatcher, read_executions, spawn_worker, wait_until, worker_thread

from conveyor import Conveyor, JobState
from conveyor.backends import Backend
from conveyor.backends.base import ClaimedJob
from conveyor.outcomes import Outcome


def states(app: Conveyor) -> dict[JobState, int]:
    total: dict[JobState, int] = {}
    for queue in app.inspector.count_by_state().values():
        for state, n in queue.items():
            total[state] = total.get(state, 0) + n
    return total


def test_worker_claims_only_as_many_jobs_as_free_slots(app: Conveyor, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    jobs = [app.tasks["t.gate"].enqueue(str(gate)) for _ in range(10)]
    with worker_thread(app, concurrency=3):
        wait_until(lambda: states(app).get(JobState.RUNNING) == 3, message="3 running")
        time.sleep(0.2)  # give an over-eager claimer the chance to be caught
        assert states(app) == {JobState.RUNNING: 3, JobState.QUEUED: 7}
        gate.touch()
        for job in jobs:
            job.result(timeout=20)


def test_four_worker_processes_and_concurrent_enqueuers_share_one_database(
    app: Conveyor, db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    record = app.tasks["t.record"]
    errs = [tmp_path / f"worker{n}.err" for n in range(4)]
    procs = [spawn_worker(db_url, err, "-c", "4", log=exec_log) for err in errs]
    ids: list[int] = []
    lock = threading.Lock()

    def enqueue(batch: int) -> None:
        for start in range(0, 600, 20):
            jobs = app.enqueue_many([record.prepare(f"{batch}-{n}") for n in range(start,
                                                                                 start + 20)])
            with lock:
                ids.extend(job.id for job in jobs)
        for _ in range(100):
            job = record.enqueue(f"{batch}-single")
            with lock:
                ids.append(job.id)

    try:
        # Registered means running with its signal handlers: the SIGTERM below stops it
        # gracefully, even when the others did all the work before it was up.
        wait_until(lambda: len(app.inspector.workers()) == 4, timeout=30,
                   message="the four workers to start")
        threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(lambda: states(app).get(JobState.SUCCEEDED) == len(ids), timeout=120,
                   interval=0.1, message="all jobs done")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert len(ids) == 2 * 700
    runs = read_executions(exec_log)
    assert sorted(run.job_id for run in runs) == sorted(ids)  # each exactly once
    assert len({run.pid for run in runs}) >= 2
    for proc, err in zip(procs, errs, strict=True):
        text = err.read_text()
        assert proc.returncode == 0, text
        assert "locked" not in text and "Traceback" not in text, text


class RecordingBackend:
    """A real backend that records the size of each ack batch."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.batches: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        self.batches.append(len(outcomes))
        return self._inner.ack_many(outcomes, worker)

    def ack_and_claim(self, outcomes: Sequence[Outcome], *args: Any,
                      **kwargs: Any) -> tuple[list[bool], list[ClaimedJob]]:
        if outcomes:
            self.batches.append(len(outcomes))
        return self._inner.ack_and_claim(outcomes, *args, **kwargs)


def test_outcomes_that_pile_up_are_written_in_one_batch(backend: Backend) -> None:
    from conveyor.backends.base import NewJob

    recording = RecordingBackend(backend)
    recording.enqueue_many([NewJob("t", "default", "[]", "{}") for _ in range(50)])
    deaths: list[BaseException] = []
    # One claim takes all 50; they end as they start; the next round writes them together.
    dispatcher = burst_dispatcher(recording, 50, deaths)
    dispatcher.run()
    assert recording.batches == [50]
    assert deaths == [] and dispatcher.written == 50 and dispatcher.held() == []
    assert backend.inspector.count_by_state() == {"default": {JobState.SUCCEEDED: 50}}


def test_outcomes_written_by_the_worker_are_batched_under_load(db_url: str,
                                                               exec_log: Path) -> None:
    from jobs_app import make_app

    app = make_app(db_url)
    try:
        jobs = app.enqueue_many([app.tasks["t.add"].prepare(n, 0) for n in range(500)])
        worker = app.worker(concurrency=8, burst=True)
        recorded: list[int] = []
        backend: Any = app.backend
        ack_many, ack_and_claim = backend.ack_many, backend.ack_and_claim

        def counting_ack_many(outcomes: Sequence[Outcome], name: str) -> list[bool]:
            recorded.append(len(outcomes))
            return ack_many(outcomes, name)  # type: ignore[no-any-return]

        def counting_ack_and_claim(outcomes: Sequence[Outcome], *args: Any) -> Any:
            if outcomes:
                recorded.append(len(outcomes))
            return ack_and_claim(outcomes, *args)

        backend.ack_many = counting_ack_many
        backend.ack_and_claim = counting_ack_and_claim
        worker.run()
        assert sum(recorded) == 500
        assert len(recorded) < 500  # some transactions carried several outcomes
        assert all(job.refresh().state is JobState.SUCCEEDED for job in jobs)
        assert not read_executions(exec_log)
    finally:
        app.close()
