"""Soft and hard time limits in every pool, and the process pool's recycling of its processes.

What ran is read from the log the tasks write themselves (jobs_app._log: "event job pid time
attempt"); the tasks are jobs_app's t.soft, t.soft_async, t.hard, t.hard_async, t.pid, t.hog.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import assert_usage_error, kill_all, spawn_worker, worker_env, worker_thread
from jobs_app import make_app

from conveyor import Conveyor, Job, JobFailed, NewJob, Worker
from conveyor.cli.group import cli
from conveyor.errors import ConfigurationError, InvalidInput
from conveyor.validation import byte_size


def events(log: Path, event: str) -> list[tuple[int, int, int]]:
    """(job, pid, attempt) of each `event` line the tasks wrote, in order."""
    found = []
    for line in log.read_text().splitlines() if log.exists() else []:
        name, job, pid, _, attempt = line.split()
        if name == event:
            found.append((int(job), int(pid), int(attempt)))
    return found


@contextmanager
def process_worker(db_url: str, tmp_path: Path, *args: str) -> Iterator[Conveyor]:
    """A real `conveyor worker --pool process` and an app to enqueue with."""
    worker: subprocess.Popen[bytes] = spawn_worker(
        db_url, tmp_path / "worker.err", "--pool", "process", *args, log=tmp_path / "exec.log")
    try:
        with make_app(db_url) as app:
            yield app
    finally:
        kill_all([worker])


def enqueue_soft_jobs(app: Conveyor) -> tuple[list[Job], list[Job]]:
    """Jobs that catch SoftTimeLimitExceeded and return, and jobs that re-raise it."""
    kept = [app.tasks[name].enqueue() for name in ("t.soft", "t.soft_async")]
    raised = [app.tasks[name].enqueue(keep=False) for name in ("t.soft", "t.soft_async")]
    return kept, raised


def assert_soft_limits(kept: list[Job], raised: list[Job], log: Path) -> None:
    for job in kept:  # caught, cleaned up, returned within the hard limit: the result is kept
        assert job.result(timeout=30) == "cleaned up"
    for job in raised:  # left uncaught: the attempt timed out (max_attempts=1: failed)
        with pytest.raises(JobFailed, match="SoftTimeLimitExceeded"):
            job.result(timeout=30)
    assert sorted(job for job, _, _ in events(log, "soft")) == sorted(
        job.id for job in kept + raised)


# -- soft limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["thread", "asyncio"])
def test_the_soft_limit_raises_inside_the_task_in_threads_and_coroutines(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool: str) -> None:
    log = tmp_path / "exec.log"
    monkeypatch.setenv("CONVEYOR_TEST_LOG", str(log))
    with make_app(db_url) as app, worker_thread(app, pool=pool, concurrency=4):
        kept, raised = enqueue_soft_jobs(app)
        assert_soft_limits(kept, raised, log)


def test_the_soft_limit_raises_inside_the_task_in_a_pool_process(
        db_url: str, tmp_path: Path) -> None:
    with process_worker(db_url, tmp_path, "-c", "2") as app:
        kept, raised = enqueue_soft_jobs(app)
        assert_soft_limits(kept, raised, tmp_path / "exec.log")


# -- hard limits ------------------------------------------------------------------------------


def assert_timed_out_twice(job: Job, log: Path) -> list[tuple[int, int, int]]:
    with pytest.raises(JobFailed, match=r"TimeoutError: task exceeded its timeout of 0\.4 s"):
        job.result(timeout=30)
    starts = [start for start in events(log, "start") if start[0] == job.id]
    assert [attempt for _, _, attempt in starts] == [1, 2]  # retried once by its policy
    return starts


@pytest.mark.parametrize("pool", ["thread", "asyncio"])
def test_the_hard_limit_stops_the_attempt_and_the_policy_retries_it(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool: str) -> None:
    log = tmp_path / "exec.log"
    monkeypatch.setenv("CONVEYOR_TEST_LOG", str(log))
    with make_app(db_url) as app, worker_thread(app, pool=pool, concurrency=2):
        coroutine = app.tasks["t.hard_async"].enqueue()
        plain = app.tasks["t.hard"].enqueue() if pool == "thread" else None
        assert_timed_out_twice(coroutine, log)
        if plain is not None:
            assert_timed_out_twice(plain, log)
            # The thread got TimeLimitExceeded raised in it, and stopped, at each attempt.
            assert [attempt for job, _, attempt in events(log, "hard")
                    if job == plain.id] == [1, 2]
            assert app.tasks["t.add"].enqueue(1, 2).result(timeout=30) == 3  # slots free


def test_a_thread_past_its_hard_limit_keeps_its_job_until_it_stops(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempt failed at the limit, but its outcome (and so its retry, or another worker's
    run) waits for the thread to stop: never two runs of one job at the same time."""
    log = tmp_path / "exec.log"
    monkeypatch.setenv("CONVEYOR_TEST_LOG", str(log))
    with make_app(db_url) as app, worker_thread(app, concurrency=1):
        job = app.tasks["t.stubborn"].enqueue()
        with pytest.raises(JobFailed, match=r"TimeoutError: task exceeded its timeout of 0\.3"):
            job.result(timeout=30)  # its late result is discarded
        ended = [float(line.split()[3]) for line in log.read_text().splitlines()
                 if line.startswith("end ")]
        finished = job.refresh().record.finished_at
        assert finished is not None and len(ended) == 1 and finished >= ended[0]


def test_the_hard_limit_kills_and_replaces_the_pool_process(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    with process_worker(db_url, tmp_path, "-c", "1") as app:
        job = app.tasks["t.hard"].enqueue()
        (_, first, _), (_, second, _) = assert_timed_out_twice(job, log)
        assert first != second  # killed at the limit; its replacement ran the retry
        # Killed again at the retry's limit: a third process runs the next job.
        assert app.tasks["t.pid"].enqueue().result(timeout=30) not in (first, second)


# -- recycling --------------------------------------------------------------------------------


def test_a_pool_process_is_replaced_after_max_tasks_per_child_jobs(
        db_url: str, tmp_path: Path) -> None:
    with process_worker(db_url, tmp_path, "-c", "1", "--max-tasks-per-child", "2") as app:
        jobs = [app.tasks["t.pid"].enqueue() for _ in range(5)]
        for job in jobs:
            job.result(timeout=30)
    pids = [pid for _, pid, _ in events(tmp_path / "exec.log", "pid")]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(set(pids)) == 3


def test_a_pool_process_over_max_memory_is_replaced_after_its_job(
        sqlite_url: str, tmp_path: Path) -> None:
    with process_worker(sqlite_url, tmp_path, "-c", "1", "--max-memory-per-child",
                        "200MB") as app:
        before = app.tasks["t.pid"].enqueue()
        hog = app.tasks["t.hog"].enqueue(300)
        after = app.tasks["t.pid"].enqueue()
        assert hog.result(timeout=30) == 300 * 1024 * 1024  # finished, not killed mid-way
        assert before.result(timeout=30) == events(tmp_path / "exec.log", "hog")[0][1]
        assert after.result(timeout=30) != before.result()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux accounting")
def test_a_large_worker_does_not_make_its_pool_processes_look_large(
        sqlite_url: str, tmp_path: Path) -> None:
    # A worker of 300 MB, processes that stay small: none is over 200 MB, none is replaced.
    # (A spawned process's getrusage peak counts the worker's size from before its exec.)
    code = ("ballast = bytearray(300 << 20)\n"
            "ballast[::4096] = bytes(len(range(0, 300 << 20, 4096)))\n"  # (pages touched)
            "from jobs_app import app\n"
            "app.worker(pool='process', concurrency=1, max_memory_per_child='200MB',"
            " burst=True, scheduler=False).run()\n")
    with make_app(sqlite_url) as app:
        jobs = [app.tasks["t.pid"].enqueue() for _ in range(3)]
        subprocess.run([sys.executable, "-c", code], env=worker_env(sqlite_url, tmp_path / "x"),
                       check=True, timeout=120, capture_output=True)
        pids = {job.result(timeout=10) for job in jobs}
    assert len(pids) == 1, pids


# -- bad input --------------------------------------------------------------------------------


def test_a_soft_limit_not_below_the_hard_one_is_refused(sqlite_url: str) -> None:
    app = Conveyor(sqlite_url)
    with pytest.raises(InvalidInput, match=r"task 'x\.slow': soft_timeout \(2 s\) must be below "
                                           r"timeout \(2 s\)"):
        app.task(name="x.slow", timeout=2, soft_timeout=2)(lambda: None)
    with pytest.raises(InvalidInput, match="soft_timeout must be"):
        app.task(name="x.slow", soft_timeout=-1)(lambda: None)
    task = app.task(name="x.ok", timeout=2, soft_timeout=1)(lambda: None)
    for refuse in (lambda: task.options(soft_timeout=2.5),  # not below the task's timeout
                   lambda: app.options("x.ok", soft_timeout=1, timeout=0.5),
                   lambda: task.options(soft_timeout=1.5, timeout=1.5)):
        with pytest.raises(InvalidInput, match=r"soft_timeout \(.*\) must be below (the job's )?"
                                               r"timeout"):
            refuse()
    with pytest.raises(InvalidInput, match="soft_timeout must be"):
        task.options(soft_timeout=0)
    job = NewJob("x.ok", "default", "[]", "{}", soft_timeout=-1.0)
    with pytest.raises(InvalidInput, match=r"soft_timeout=-1.0 is not a number of seconds > 0"):
        app.enqueue_many([job])
    app.close()


def test_a_job_has_its_own_soft_limit(db_url: str, exec_log: Path) -> None:
    """task.options(soft_timeout=...) is stored with the job (one by one and in a batch) and
    wins over the task's; None takes the task's away for that job."""
    with make_app(db_url, lease_timeout=5.0) as app:
        free, soft = app.tasks["t.soft_free"], app.tasks["t.soft"]
        one = free.options(soft_timeout=0.2).enqueue()
        batch = app.enqueue_many([free.options(soft_timeout=0.3).prepare() for _ in range(2)])
        by_name = app.options("t.soft_free", soft_timeout=0.2).enqueue()
        none = soft.options(soft_timeout=None, timeout=0.5).enqueue()
        with worker_thread(app, concurrency=8):
            for job in (one, *batch, by_name):
                assert job.result(timeout=30) == "cleaned up"
            with pytest.raises(JobFailed, match="timeout"):
                none.result(timeout=30)
    cleaned = {job for job, _, _ in events(exec_log, "soft")}
    assert cleaned == {one.id, by_name.id, *(job.id for job in batch)}  # not `none`


def test_recycling_is_for_the_process_pool_and_takes_sizes(sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    with pytest.raises(ConfigurationError, match="the thread pool has none"):
        Worker(app, pool="thread", max_tasks_per_child=5)
    with pytest.raises(ConfigurationError, match="the asyncio pool has none"):
        app.worker(pool="asyncio", max_memory_per_child="1GiB")
    with pytest.raises(ConfigurationError, match="max_tasks_per_child must be an int >= 1"):
        Worker(app, pool="process", max_tasks_per_child=0)
    with pytest.raises(ConfigurationError, match="max_memory_per_child must be a size"):
        Worker(app, pool="process", max_memory_per_child="lots")
    assert [byte_size("s", text) for text in ("512MB", "1GiB", "200k", "1.5 mib", "42")] == [
        512 * 10**6, 2**30, 200_000, 3 * 2**19, 42]
    for bad in ("", "12XB", "-5MB", "0", "MB", 0, -1, True, 1.5):
        with pytest.raises(InvalidInput, match="must be"):
            byte_size("s", bad)


def test_the_cli_refuses_recycling_flags_it_cannot_honour(sqlite_url: str) -> None:
    runner = CliRunner()
    base = ["worker", "-A", "jobs_app:app", "--url", sqlite_url]
    assert_usage_error(runner.invoke(cli, [*base, "--max-tasks-per-child", "3"]),
                       "the thread pool has none (use --pool process)")
    assert_usage_error(runner.invoke(cli, [*base, "--pool", "process",
                                           "--max-memory-per-child", "12XB"]),
                       "must be a size in bytes")
    assert_usage_error(runner.invoke(cli, [*base, "--pool", "process",
                                           "--max-tasks-per-child", "0"]),
                       "--max-tasks-per-child")
