"""The Worker: lifecycle only. Register, start the duties and the dispatcher, drain on a
signal, deregister. The claim loop and the record of running jobs are the dispatcher's
(dispatcher.py); heartbeat, lease guard, rescuer and cancel watcher are duties (duties/)."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import validation
from .._version import __version__
from ..backends.base import Backend, ClaimedJob, WorkerInfo
from ..errors import ConfigurationError, ConveyorError, InvalidInput
from . import joblog, names
from .dispatcher import BURST_HORIZON, Dispatcher
from .duties import DutyContext, Supervisor, make_duties
from .duties.rescuer import Rescuer
from .lease_guard import HardDeadline, LeaseGuard
from .pools import POOLS, Pool, check_recycling, default_concurrency, make_pool
from .signals import SignalRelay

if TYPE_CHECKING:
    from ..app import Conveyor
    from .pools.spawn import Launcher

log = logging.getLogger("conveyor.worker")

THREAD_HANDBACK_DELAY = 2.0


class WorkerStopped(ConveyorError):
    """The worker stopped because one of its duties failed."""


class Worker:
    """Claims jobs from the database and runs them until stopped.

    Runs in the calling thread. SIGTERM/SIGINT (main thread only): stop claiming, let
    running jobs finish within `shutdown_timeout`, hand the rest back; a second signal
    hands everything back at once.

    `owns_process=True` (what `conveyor worker` passes) says the process exists only to run
    this worker: jobs in threads that outlive the grace period are handed back because the
    process is about to exit, and a thread whose lease could not be renewed in time makes the
    process exit (threads cannot be stopped otherwise). An embedded worker (the default)
    never exits its host process: it keeps renewing the leases of jobs whose threads still
    run after `run()` returned, and writes their outcomes when they end.

    `launcher` (process pool): processes `conveyor worker` started before it imported the
    app (pools/spawn.py); the pool takes them if they import the same app for as many slots.
    """

    def __init__(
        self,
        app: Conveyor,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        pool: str = "thread",
        burst: bool = False,
        shutdown_timeout: float = 30.0,
        name: str | None = None,
        owns_process: bool = False,
        burst_horizon: float = BURST_HORIZON,
        scheduler: bool = True,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | str | None = None,
        prefetch: int | str | None = "auto",
        launcher: Launcher | None = None,
    ) -> None:
        if pool not in POOLS:
            raise ConfigurationError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.recycling = check_recycling(pool, max_tasks_per_child, max_memory_per_child)
        if concurrency is None:
            concurrency = default_concurrency(pool)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not (
            1 <= concurrency <= 1000
        ):
            raise ConfigurationError(
                f"concurrency must be an int from 1 to 1000, got {concurrency!r}"
            )
        try:
            self.prefetch = validation.prefetch(prefetch)
        except InvalidInput as exc:
            raise ConfigurationError(str(exc)) from None
        if self.prefetch and pool != "thread":
            raise ConfigurationError(
                f"prefetch holds claimed jobs until a thread is free; the {pool} pool starts "
                "every job it is given at once, so it does not prefetch (leave prefetch out, "
                "or use the thread pool)")
        self.shutdown_timeout = validation.non_negative_seconds(
            "shutdown_timeout", shutdown_timeout
        )
        self.burst_horizon = validation.non_negative_seconds("burst_horizon", burst_horizon)
        if queues is None:
            wanted = {"default"} | {task.settings.queue for task in app.tasks.values()}
            queues = sorted(wanted)
        if isinstance(queues, str):
            queues = [part for part in queues.split(",") if part.strip()]
        specs = [validation.queue_spec(queue) for queue in queues]
        if not specs:
            raise ConfigurationError("a worker needs at least one queue")
        self.app = app
        self.queues = tuple(dict.fromkeys(name for name, _ in specs))
        # Weighted fair queuing when any queue has a weight; the others weigh 1.
        self.weights: dict[str, int] = {}
        if any(weight is not None for _, weight in specs):
            given = {name: weight for name, weight in specs if weight is not None}
            self.weights = {name: given.get(name, 1) for name in self.queues}
        self.concurrency = concurrency
        self.pool_kind = pool
        self.burst = burst
        host = socket.gethostname()
        self.name = name or f"{host}.{os.getpid()}.{secrets.token_hex(3)}"
        self.info = WorkerInfo(
            name=self.name,
            host=host,
            pid=os.getpid(),
            queues=self.queues,
            concurrency=concurrency,
            pool=pool,
        )
        self.lease = app.lease_timeout
        self.launcher = launcher  # process pool: its processes launched ahead, if any
        self.owns_process = owns_process
        self.scheduler = scheduler  # fire the app's schedules (see scheduling.py)
        self.abandoned_threads = 0  # jobs handed back while their thread still ran
        self._stopping = threading.Event()
        self._stop_now = threading.Event()
        self._fatal: BaseException | None = None
        self._registered = False  # never deregister a name another worker holds
        self._started = threading.Event()
        self._stopped = threading.Event()  # set once every job is done and the worker is out
        self._dispatcher: Dispatcher | None = None
        self._joblog = joblog.JobLogWriter()

    def __repr__(self) -> str:
        return f"<Worker {self.name} queues={','.join(self.queues)} c={self.concurrency}>"

    @property
    def processed(self) -> int:
        """Jobs this worker ran to an outcome (handed-back ones not counted)."""
        return 0 if self._dispatcher is None else self._dispatcher.processed

    # -- control -----------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming and drain (thread-safe). `now=True` hands running jobs back at once."""
        self._stopping.set()
        if now:
            self._stop_now.set()
        if self._dispatcher is not None:
            self._dispatcher.wake()

    @property
    def started(self) -> threading.Event:
        """Set once the worker is registered and claiming."""
        return self._started

    @property
    def stopped(self) -> threading.Event:
        """Set once the worker is out of the database: every job it ran has its outcome
        written or was handed back (later than `run()` returning, while kept jobs run on)."""
        return self._stopped

    def _on_signal(self, signum: int) -> None:
        # (In the signal relay's thread, never in the handler: see signals.py.)
        if self._stopping.is_set():
            log.warning("second signal: handing running jobs back now")
            self.stop(now=True)
        else:
            log.info(
                "signal %s: finishing running jobs (up to %.0f s), then stopping",
                signal.Signals(signum).name,
                self.shutdown_timeout,
            )
            self.stop()

    def _on_duty_death(self, duty: str, exc: BaseException) -> None:
        # Without heartbeats or acks, running on would only let leases lapse under running
        # jobs: hand everything back now instead.
        log.error("worker duty %r failed: %s; handing jobs back and stopping", duty, exc)
        self._fatal = exc
        self.stop(now=True)

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        """Work until stopped (or, with burst, until nothing is left to claim)."""
        backend: Backend = self.app.backend
        log.info("worker %s: database %s", self.name, backend.location)
        guard = LeaseGuard(self.lease, backend.renewal_blocked)
        dispatcher = Dispatcher(
            backend, self.name, self.queues, self.concurrency, self.lease,
            stopping=self._stopping, on_death=self._on_duty_death, guard=guard,
            joblog=self._joblog, burst=self.burst, burst_horizon=self.burst_horizon,
            weights=self.weights, prefetch=self.prefetch)
        self._joblog.start()
        pool = make_pool(self.pool_kind, app=self.app, concurrency=self.concurrency,
                         lease=self.lease, on_outcome=dispatcher.on_outcome,
                         on_progress=dispatcher.on_progress, on_start=self._joblog.started,
                         recycling=self.recycling, launcher=self.launcher)
        dispatcher.use(pool)
        self._dispatcher = dispatcher
        hard = None
        if self.owns_process and not pool.kills_jobs:
            hard = dispatcher.hard = HardDeadline(self.lease)
            if not hard.available:
                log.warning("no stderr to report through: a thread whose lease cannot be "
                            "renewed will not make this worker exit")
        context = DutyContext(
            app=self.app, backend=backend, info=self.info, lease=self.lease,
            dispatcher=dispatcher, pool=pool, guard=guard, hard=hard,
            owns_process=self.owns_process, stop=self.stop, stopping=self._stopping.is_set,
            disabled=frozenset() if self.scheduler else frozenset({"scheduler"}))
        duties = make_duties(context)
        supervisor = Supervisor(duties, backend, self.name, self._on_duty_death,
                                min_ttl=self.lease)
        signals = SignalRelay(self._on_signal)
        signals.install()
        kept: list[ClaimedJob] = []
        try:
            # Tasks first, so that once this worker shows, an enqueue by name elsewhere finds
            # each of its tasks' queue (and defaults).
            backend.register_tasks(self.name, [t.info for t in self.app.tasks.values()])
            for queue, options in sorted(self.app.queues.items()):  # settings declared in code
                backend.set_queue(queue, lifo=options.lifo,
                                  concurrency=options.concurrency or 0)
            names.register(backend, self.info, self.lease)
            self._registered = True
            supervisor.start()
            dispatcher.listen()
            for duty in duties:  # take back dead workers' jobs before claiming
                if duty.name == Rescuer.name:
                    duty.run_once()
            # Last: a process pool returns once one of its processes has imported the app,
            # which the processes launched ahead may still be doing meanwhile.
            pool.start()
            log.info("worker %s started: queues=%s pool=%s concurrency=%d lease=%gs conveyor=%s",
                     self.name, ",".join(self.queues), self.pool_kind, self.concurrency,
                     self.lease, __version__, extra={
                         "worker": self.name, "queues": list(self.queues),
                         "pool": self.pool_kind, "concurrency": self.concurrency,
                         "lease": self.lease, "version": __version__})
            self._started.set()
            try:
                dispatcher.run()
            finally:
                kept = self._drain(dispatcher, pool)
        finally:
            dispatcher.unlisten()
            signals.restore()
            if kept:
                # Threads that cannot be stopped still run these jobs: keep their leases
                # and write their outcomes when they end, behind the caller's back.
                threading.Thread(target=self._keep_then_finish,
                                 args=(dispatcher, supervisor, hard),
                                 name="conveyor-keeper", daemon=True).start()
            else:
                self._finish(dispatcher, supervisor, hard)
        log.info("worker %s stopped after %d jobs", self.name, self.processed)
        if self._fatal is not None:
            raise WorkerStopped(f"worker stopped because a duty failed: {self._fatal}") \
                from self._fatal

    def _drain(self, dispatcher: Dispatcher, pool: Pool) -> list[ClaimedJob]:
        """Let running jobs finish within the grace period; hand the rest back untouched.
        Returns the jobs kept instead: an embedded worker's threads that still run them."""
        self._hand_back_unstarted(dispatcher)
        dispatcher.finish_running(time.monotonic() + self.shutdown_timeout, self._stop_now)
        unfinished = dispatcher.running_jobs()
        if unfinished and not pool.kills_jobs and not self.owns_process:
            # Handing the jobs back would let another worker run them beside threads that
            # cannot be stopped in a process that goes on: keep them instead.
            pool.close(kill=False)
            log.warning("%d job(s) still running in threads that cannot be stopped: their "
                        "leases are kept and their outcomes written when they end: %s",
                        len(unfinished), [job.id for job in unfinished])
            return unfinished
        unfinished = dispatcher.abandon_running()  # an outcome from now on is not written
        for job in unfinished:
            pool.request_cancel(job.id)  # a cooperative task stops at once
        pool.close(kill=bool(unfinished))
        if unfinished:
            not_before = 0.0
            if not pool.kills_jobs:
                # A thread cannot be killed: the job stays unclaimable for a moment, time
                # for this process (which exits after run() returns) to take the thread along.
                not_before = time.time() + THREAD_HANDBACK_DELAY
                self.abandoned_threads = len(unfinished)
            released = dispatcher.hand_back(unfinished, not_before=not_before)
            log.warning("handed back %d unfinished job(s): %s", released,
                        [job.id for job in unfinished])
        return []

    def _hand_back_unstarted(self, dispatcher: Dispatcher) -> None:
        """Prefetched jobs that never started go back at once, their attempt not counted."""
        unstarted = dispatcher.take_back_unstarted()
        if not unstarted:
            return
        try:
            released = dispatcher.hand_back(unstarted)
        except Exception as exc:  # their leases lapse; a rescuer takes them back then
            log.warning("could not hand back %d prefetched job(s) that never started (%s): "
                        "they run again once their lease expires", len(unstarted), exc)
            return
        log.info("handed back %d prefetched job(s) that never started", released)

    def _keep_then_finish(self, dispatcher: Dispatcher, supervisor: Supervisor,
                          hard: HardDeadline | None) -> None:
        dispatcher.finish_running(float("inf"), threading.Event())
        self._finish(dispatcher, supervisor, hard)

    def _finish(self, dispatcher: Dispatcher, supervisor: Supervisor,
                hard: HardDeadline | None) -> None:
        """Stop the duties, write what is left, hand back what could not be written,
        deregister."""
        try:
            supervisor.stop()
            if hard is not None:
                hard.disarm()
            dispatcher.flush()
            unwritten = dispatcher.held()
            if unwritten:  # outcomes the database would not take: run those jobs again
                dispatcher.backend.release(unwritten)
                log.warning("handed back %d job(s) whose outcome could not be written",
                            len(unwritten))
            if self._registered:
                dispatcher.backend.deregister_worker(self.name)
        finally:
            self._joblog.stop()
            self._stopped.set()
