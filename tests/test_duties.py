"""Worker duties: a singleton duty runs on one worker at a time, and another takes over when
that worker stops (at once: it resigns) or dies (once its leader lease expires)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from beacon_duty import Beacon, leaders, runs
from helpers import kill_all, wait_until, worker_env, worker_thread
from jobs_app import make_app

from conveyor.worker import WorkerStopped, duties, loops
from conveyor.worker.duties import DutyContext

LEASE = 2.0


class Broken:
    """A duty that fails at every run (a bug, not an outage)."""

    name = "test-broken"
    interval = 0.02
    singleton = False

    def __init__(self, ctx: DutyContext) -> None:
        pass

    def run_once(self) -> None:
        raise RuntimeError("this duty is broken")


def test_a_duty_that_keeps_failing_stops_the_worker_loudly(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(loops, "OUTAGE_TOLERANCE", 0.0)
    monkeypatch.setattr(duties, "DUTIES", [*duties.DUTIES, Broken])
    app = make_app(db_url, lease_timeout=LEASE)
    try:
        with pytest.raises(WorkerStopped, match="this duty is broken"):
            app.worker().run()
        assert "worker duty 'test-broken' failed: this duty is broken; handing jobs back and " \
            "stopping" in caplog.text
        assert app.inspector.workers() == []  # deregistered all the same
    finally:
        app.close()


def test_of_two_workers_only_the_leader_runs_a_singleton_duty_and_resigns_on_stop(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "duty.log"
    monkeypatch.setenv("CONVEYOR_TEST_DUTY_LOG", str(log))
    monkeypatch.setattr(duties, "DUTIES", [*duties.DUTIES, Beacon])
    app = make_app(db_url, lease_timeout=LEASE)
    try:
        with worker_thread(app, name="first"):
            wait_until(lambda: len(runs(log)) >= 3, message="the first worker to run the duty")
            with worker_thread(app, name="second"):
                count = len(runs(log))
                wait_until(lambda: len(runs(log)) >= count + 10, message="more runs")
                assert leaders(log) == ["first"]
            stopped = time.time()
        # "first" resigned as it stopped: a third worker takes over well within a lease.
        with worker_thread(app, name="third"):
            wait_until(lambda: leaders(log)[-1:] == ["third"], timeout=LEASE,
                       message="the third worker to take over")
        assert leaders(log) == ["first", "third"]
        assert min(at for name, _, at in runs(log) if name == "third") >= stopped
    finally:
        app.close()


def test_when_the_leader_is_killed_another_worker_takes_the_singleton_duty_over(
    db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "duty.log"
    command = [sys.executable, "-c",
               "import beacon_duty; beacon_duty.install(); from conveyor.cli import main; main()",
               "worker", "-A", "jobs_app:app", "--url", db_url, "-c", "1"]
    env = {**worker_env(db_url, lease=LEASE), "CONVEYOR_TEST_DUTY_LOG": str(log)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("one", "two"):
            with open(tmp_path / f"{name}.err", "wb") as err:
                procs.append(subprocess.Popen([*command, "--name", name], env=env, stdout=err,
                                              stderr=err))
        wait_until(lambda: len(runs(log)) >= 20, timeout=30, message="the duty to run")
        (leader,) = leaders(log)  # one worker runs it, the other skips
        by_name = dict(zip(("one", "two"), procs, strict=True))
        victim, survivor = by_name[leader], by_name["two" if leader == "one" else "one"]
        time.sleep(1.0)
        assert leaders(log) == [leader]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed = time.time()
        wait_until(lambda: len(leaders(log)) == 2, timeout=LEASE * 5,
                   message="the other worker to take the duty over")
        count = len(runs(log))
        wait_until(lambda: len(runs(log)) >= count + 5, message="more runs")
        reigns = leaders(log)
        assert reigns == [leader, "two" if leader == "one" else "one"]
        last_reign = max(at for name, _, at in runs(log) if name == leader)
        takeover = min(at for name, _, at in runs(log) if name == reigns[1])
        assert last_reign < killed < takeover
        # Not before the dead leader's lease (at least the worker's lease) had expired.
        assert takeover >= last_reign + LEASE * 0.9, (last_reign, takeover)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0, (tmp_path / f"{reigns[1]}.err").read_text()
        assert "leads duty 'test-beacon' now" in (tmp_path / f"{reigns[1]}.err").read_text()
    finally:
        kill_all(procs)
        for proc in procs:
            if proc.poll() is None:  # pragma: no cover
                os.kill(proc.pid, signal.SIGKILL)
