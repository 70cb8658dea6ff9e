"""Workflows run by real worker processes (tests/support/workflow_app.py): a chord whose
member's worker is killed with SIGKILL mid-run, and a random DAG of `depends_on` jobs spread
over three workers.

What ran, and in which order, is read from the log the tasks write themselves ("start"/"end"
lines with the task's own clock, pid and attempt). A parent's end line is written before its
outcome is stored, and the outcome's transaction is what releases its children, whose start
lines come after their claim: a child logged as starting before a parent's logged end ran
before that parent had ended.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import Execution, kill_all, read_executions, wait_until, worker_env
from workflow_app import make_app

import conveyor
from conveyor import Conveyor, JobState

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL"),
]

# A lease short enough that the killed worker's jobs come back within a few seconds: a rescuer
# declares a lease dead after watching it not advance for a whole lease.
LEASE = 2.0


def spawn(db_url: str, stderr: Path, log: Path, *args: str, gate: Path | None = None,
          lease: float | None = None) -> subprocess.Popen[bytes]:
    """A real `conveyor worker` process on workflow_app."""
    command = [sys.executable, "-m", "conveyor", "worker", "-A", "workflow_app:app", "--url",
               db_url, "--no-scheduler", *args]
    env = worker_env(db_url, log, lease)
    if gate is not None:
        env["CONVEYOR_TEST_GATE"] = str(gate)
    with open(stderr, "ab") as err:
        return subprocess.Popen(command, env=env, stdout=err, stderr=err)


def stop(app: Conveyor, workers: list[subprocess.Popen[bytes]], stderr: Path) -> None:
    """SIGTERM each live worker once it is registered (its signal handlers are installed
    then), and check each drains and exits cleanly."""
    live = [worker for worker in workers if worker.poll() is None]
    pids = {worker.pid for worker in live}
    wait_until(lambda: pids <= {w.pid for w in app.inspector.workers()}, timeout=30,
               message="workers registered")
    for worker in live:
        worker.send_signal(signal.SIGTERM)
    for worker in live:
        assert worker.wait(timeout=30) == 0, stderr.read_text(errors="replace")[-3000:]


def by_job(runs: list[Execution]) -> dict[int, list[Execution]]:
    found: dict[int, list[Execution]] = defaultdict(list)
    for run in sorted(runs, key=lambda run: run.start):
        found[run.job_id].append(run)
    return found


def ended(log: Path, ids: set[int]) -> bool:
    return {run.job_id for run in read_executions(log) if run.end is not None} >= ids


# -- 1: a chord survives a member's worker killed with SIGKILL -----------------------------


def test_a_chord_whose_member_s_worker_is_killed_calls_back_once_with_every_result(
        db_url: str, tmp_path: Path) -> None:
    log, gate = tmp_path / "executions.log", tmp_path / "gate"
    err = {name: tmp_path / f"{name}.err" for name in ("victim", "survivor")}
    # Distinct values out of order: the callback's list shows the member order, not the order
    # the members ended in.
    values = [(7 * i) % 50 + 100 for i in range(50)]
    with make_app(db_url) as app:
        slow, echo = app.tasks["w.slow"], app.tasks["w.echo"]
        flow = conveyor.chord([slow.s(v) for v in values], echo.s("tail")).enqueue()
        *members, callback = flow.jobs
        member_ids = {job.id for job in members}
        assert flow.progress == {JobState.QUEUED: 50, JobState.WAITING: 1}

        procs: list[subprocess.Popen[bytes]] = []
        try:
            # Every w.slow runs until the gate opens: the victim fills its 4 slots with
            # members and holds them; the survivor holds 16 others.
            victim = spawn(db_url, err["victim"], log, "-c", "4", "--name", "victim",
                           gate=gate, lease=LEASE)
            procs.append(victim)
            survivor = spawn(db_url, err["survivor"], log, "-c", "16", "--name", "survivor",
                             gate=gate, lease=LEASE)
            procs.append(survivor)

            def victim_full() -> bool:
                mine = [run for run in read_executions(log) if run.pid == victim.pid]
                return len(mine) == 4 and all(run.end is None for run in mine)

            # Its slots full, the victim claims nothing more: every job it holds is logged.
            wait_until(victim_full, timeout=20, message="the victim to start 4 members")
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = time.time()  # reaped: nothing the victim wrote is later than this
            gate.touch()

            wait_until(lambda: ended(log, member_ids | {callback.id}), timeout=30,
                       interval=0.05, message="every member and the callback to end")
            assert flow.result(timeout=10) == [[values, "tail"], {}]
            stop(app, [survivor], err["survivor"])
        finally:
            gate.touch()
            kill_all(procs)

        runs = read_executions(log)
        jobs = by_job(runs)
        assert set(jobs) == member_ids | {callback.id}

        # The callback ran exactly once, after every member's last end.
        (call,) = jobs[callback.id]
        assert call.end is not None and call.attempt == 1
        last_member_end = max(run.end for run in runs
                              if run.job_id in member_ids and run.end is not None)
        assert call.start >= last_member_end, (call, last_member_end)

        # The victim's members: each cut short once on the victim, then run again elsewhere
        # as attempt 2, after the kill. Every member ended exactly once, and only the victim
        # left runs without an end.
        killed = {run.job_id for run in runs if run.pid == victim.pid}
        assert len(killed) == 4 and killed <= member_ids
        for job_id in member_ids:
            completed = [run for run in jobs[job_id] if run.end is not None]
            assert len(completed) == 1, jobs[job_id]
            assert completed[0].pid != victim.pid, jobs[job_id]
            if job_id in killed:
                first, again = jobs[job_id]
                assert (first.pid, first.end, first.attempt) == (victim.pid, None, 1)
                assert again.pid == survivor.pid and again.attempt == 2, jobs[job_id]
                assert again.start >= killed_at, (again, killed_at)
            else:
                assert [run.attempt for run in jobs[job_id]] == [1], jobs[job_id]

        # ... and counted once: the database agrees.
        flow.refresh()
        assert flow.state == "succeeded"
        assert flow.progress == {JobState.SUCCEEDED: 51}
        assert {job.id: job.attempts for job in flow.jobs} == {
            job.id: 2 if job.id in killed else 1 for job in flow.jobs}


# -- 2: a random DAG over three workers ----------------------------------------------------

SEED = 20240612
DAG_SIZE = 200


def random_dag(seed: int, size: int) -> list[list[int]]:
    """Each node's parents: 0-3 earlier nodes, mostly recent ones (so the DAG is deep)."""
    rng = random.Random(seed)
    parents: list[list[int]] = []
    for n in range(size):
        window = range(max(0, n - 20), n)
        count = rng.randint(0, min(3, len(window)))
        parents.append(sorted(rng.sample(window, count)))
    return parents


def test_a_random_dag_runs_each_job_once_after_all_its_parents(
        db_url: str, tmp_path: Path) -> None:
    log, stderr, gate = (tmp_path / name for name in ("executions.log", "workers.err", "gate"))
    dag = random_dag(SEED, DAG_SIZE)
    with make_app(db_url) as app:
        node = app.tasks["w.node"]
        # Every job is stored before any runs, so each edge is released by a worker recording
        # a parent's end (not found ended at enqueue). The DAG's roots wait for one more job,
        # a w.slow that ends once the gate opens: the gate opens once all three workers are
        # up, so none of them runs the whole DAG alone before the others started.
        opener = app.tasks["w.slow"].enqueue(-1)
        ids: list[int] = []
        for n, parents in enumerate(dag):
            waits_for = [ids[p] for p in parents] or [opener.id]
            ids.append(node.options(depends_on=waits_for).enqueue(n).id)
        assert DAG_SIZE // 10 < sum(1 for parents in dag if not parents) < DAG_SIZE // 2
        assert app.inspector.count_by_state()["default"] == {
            JobState.QUEUED: 1, JobState.WAITING: DAG_SIZE}

        workers: list[subprocess.Popen[bytes]] = []
        try:
            workers = [spawn(db_url, stderr, log, "-c", "8", gate=gate) for _ in range(3)]
            pids = {worker.pid for worker in workers}
            wait_until(lambda: pids <= {w.pid for w in app.inspector.workers()}, timeout=30,
                       message="workers registered")
            gate.touch()
            wait_until(lambda: ended(log, set(ids)), timeout=60, interval=0.05,
                       message="every job of the DAG to end")
            stop(app, workers, stderr)
        finally:
            gate.touch()
            kill_all(workers)

        runs = read_executions(log)
        jobs = by_job(runs)
        assert set(jobs) == {opener.id, *ids}
        for job_runs in jobs.values():  # each exactly once
            assert len(job_runs) == 1 and job_runs[0].end is not None, job_runs
            assert job_runs[0].attempt == 1, job_runs
        run_of = {job_id: job_runs[0] for job_id, job_runs in jobs.items()}
        for n, parents in enumerate(dag):
            child = run_of[ids[n]]
            for parent_id in [ids[p] for p in parents] or [opener.id]:
                parent = run_of[parent_id]
                assert parent.end is not None and child.start >= parent.end, (n, parent, child)
        assert app.inspector.count_by_state()["default"] == {JobState.SUCCEEDED: DAG_SIZE + 1}
        assert [app.get_job(job_id).record.result for job_id in ids] == list(range(DAG_SIZE))
