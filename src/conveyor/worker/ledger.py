"""The ack ledger: outcomes and progress written in batches by one thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..backends.base import Backend, Lease, ProgressUpdate
from ..backends.unavailable import is_unavailable
from ..job import JobError, Progress
from ..outcomes import Failed, Outcome
from ..serializer import clip_text, storable_text
from .loops import FailureBudget

log = logging.getLogger("conveyor.worker")

PROGRESS_INTERVAL = 0.05  # progress alone is written at most this often
CLAIM_LOOP_LINGER = 0.05
ISOLATED_TRIES = 3  # a lone outcome refused this many times in a row is unstorable


def unstorable(outcome: Outcome, exc: BaseException) -> Failed:
    """The outcome to store instead of one the database refused."""
    reason = clip_text(storable_text(f"{type(exc).__name__}: {exc}"), 4096)
    return Failed(outcome.job_id, outcome.token, outcome.attempt, outcome.started_at,
                  outcome.finished_at, JobError(
                      "OutcomeNotStorable",
                      f"the database refused this job's {outcome.kind} outcome: {reason}"))


class AckLedger:
    """Collects outcomes from pool threads; a single writer thread stores them in batches.

    A batch forms by itself while the previous one is being written, so a busy worker
    makes one transaction for many jobs and an idle one acks at once.
    """

    def __init__(
        self,
        backend: Backend,
        worker_name: str,
        on_written: Callable[[], None],
        on_death: Callable[[BaseException], None] | None = None,
        *,
        linger: float = 0.0,
    ) -> None:
        self._backend = backend
        self._worker_name = worker_name
        self._on_written = on_written
        self._on_death = on_death
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._outcomes: list[Outcome] = []
        self._progress: dict[int, ProgressUpdate] = {}
        self._unacked: dict[int, Lease] = {}
        self._stopping = False
        self._last_progress_write = 0.0
        # Held by whoever writes outcomes or progress (this thread, or the claim loop), so a
        # job's last progress is never written after its outcome.
        self.writing = threading.Lock()
        self._pending_since = 0.0
        # Outcomes wait this long for the claim loop to write them with its next claim
        # before this thread writes them itself.
        self.linger = linger
        self.written = 0
        self.rejected = 0

    def hold(self, lease: Lease) -> None:
        """Note a lease this worker holds until its outcome is written."""
        with self._cond:
            self._unacked[lease.job_id] = lease

    def held(self) -> list[Lease]:
        with self._cond:
            return list(self._unacked.values())

    def forget(self, job_id: int, token: int | None = None) -> None:
        """Stop vouching for a job's lease (only for that `token`, when given: the same job's
        next attempt may hold a newer lease by now)."""
        with self._cond:
            held = self._unacked.get(job_id)
            if token is not None and held is not None and held.token != token:
                return
            self._unacked.pop(job_id, None)
            self._progress.pop(job_id, None)

    def put(self, outcome: Outcome) -> None:
        with self._cond:
            first = not self._outcomes
            if first:
                self._pending_since = time.monotonic()
            self._outcomes.append(outcome)
            if first or self.linger == 0.0:
                self._cond.notify()

    def put_progress(self, lease: Lease, progress: Progress) -> None:
        with self._cond:
            self._progress[lease.job_id] = ProgressUpdate(lease, progress)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._outcomes)

    def take(self) -> tuple[list[Outcome], list[ProgressUpdate]]:
        """Hand pending outcomes (and the progress to write before them) to a caller that
        writes them in its own transaction: the claim loop, with its next claim. It must
        `settle` or `put_back` them."""
        with self._cond:
            outcomes, self._outcomes = self._outcomes, []
            progress: list[ProgressUpdate] = []
            if outcomes and self._progress:
                progress = list(self._progress.values())
                self._progress.clear()
            return outcomes, progress

    def put_back(self, outcomes: list[Outcome], progress: list[ProgressUpdate]) -> None:
        with self._cond:
            self._outcomes[:0] = outcomes
            for update in progress:
                self._progress.setdefault(update.lease.job_id, update)
            self._pending_since = min(self._pending_since, time.monotonic())
            self._cond.notify()

    def settle(self, outcomes: list[Outcome], accepted: list[bool]) -> None:
        """Record that `outcomes` were written; `accepted[i]` is False where refused."""
        with self._cond:
            for outcome, ok in zip(outcomes, accepted, strict=True):
                self._unacked.pop(outcome.job_id, None)
                if not ok:
                    self.rejected += 1
                    log.warning(
                        "job %s: outcome %r rejected: this worker no longer holds its lease "
                        "(it expired and another worker took the job)",
                        outcome.job_id,
                        outcome.kind,
                    )
            self.written += sum(accepted)

    def write_now(self) -> None:
        """From now on write outcomes as soon as they arrive (the claim loop has stopped)."""
        with self._cond:
            self.linger = 0.0
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _due(self) -> float | None:
        """Seconds until there is something to write (0: now), or None: nothing pending."""
        now = time.monotonic()
        waits = []
        if self._outcomes:
            waits.append(self._pending_since + self.linger - now)
        if self._progress:
            waits.append(self._last_progress_write + PROGRESS_INTERVAL - now)
        return max(0.0, min(waits)) if waits else None

    def run(self) -> None:
        """Loop until stopped, then write whatever is left."""
        while True:
            with self._cond:
                while not self._stopping:
                    wait = self._due()
                    if wait == 0.0:
                        break
                    self._cond.wait(wait)
                outcomes, self._outcomes = self._outcomes, []
                progress = list(self._progress.values())
                self._progress.clear()
                stopping = self._stopping
            if progress or outcomes:
                with self.writing:
                    written = self._write_with_retries(outcomes, progress)
                if not written:
                    return
            if stopping:
                with self._cond:
                    if not self._outcomes and not self._progress:
                        return

    def _write_with_retries(
        self, outcomes: list[Outcome], progress: list[ProgressUpdate]
    ) -> bool:
        """Write one batch, retrying a failing database; give up loudly once the failure
        budget is spent. On giving up the batch's leases stay held, so the worker hands
        those jobs back. A failure that is not the database being unavailable may be one
        unwritable value: then the batch is written one by one (write_isolated)."""
        budget = FailureBudget()
        while True:
            try:
                if not outcomes and not progress:
                    return True
                self._write(outcomes, progress)
                return True
            except Exception as exc:
                if not is_unavailable(exc):
                    outcomes, progress = self.write_isolated(outcomes, progress)
                    if not outcomes and not progress:
                        return True
                spent = budget.failed(exc)
                budget.log_failure(f"writing {len(outcomes)} outcome(s)", exc)
                if spent:
                    self.error = exc
                    if self._on_death is not None:
                        self._on_death(exc)
                    return False
                time.sleep(budget.pause())

    def write_isolated(
        self, outcomes: list[Outcome], progress: list[ProgressUpdate]
    ) -> tuple[list[Outcome], list[ProgressUpdate]]:
        """Write each progress update and outcome on its own, so one value the database
        refuses fails its own job and no other. An outcome that fails alone, again and again,
        is replaced by a plain failure that says why; if even that is refused, the database
        refuses everything (not this job's fault) and the rest is returned for the caller to
        retry, as when the database becomes unavailable on the way. Callers hold `writing`."""
        for index, update in enumerate(progress):
            try:
                self._backend.save_progress([update])
            except Exception as exc:
                if is_unavailable(exc):
                    return outcomes, progress[index:]
                log.error("job %s: progress dropped, the database refused it: %s",
                          update.lease.job_id, exc)
        for index, outcome in enumerate(outcomes):
            try:
                accepted = self._ack_alone(outcome)
            except Exception as exc:
                if is_unavailable(exc):
                    return outcomes[index:], []
                log.error("job %s: the database refuses its %s outcome: %s", outcome.job_id,
                          outcome.kind, exc)
                replacement = unstorable(outcome, exc)
                try:
                    accepted = self._backend.ack_many([replacement], self._worker_name)
                except Exception:
                    return outcomes[index:], []
                outcome = replacement
            self.settle([outcome], accepted)
        self._on_written()
        return [], []

    def _ack_alone(self, outcome: Outcome) -> list[bool]:
        """Ack one outcome, trying ISOLATED_TRIES times: a refusal that is the value's own
        comes back every time, a passing fault does not."""
        for attempt in range(ISOLATED_TRIES):
            try:
                return self._backend.ack_many([outcome], self._worker_name)
            except Exception as exc:
                if is_unavailable(exc) or attempt == ISOLATED_TRIES - 1:
                    raise
                time.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, outcomes: list[Outcome], progress: list[ProgressUpdate]) -> None:
        """Write a batch (in one transaction per kind)."""
        if progress:
            self._backend.save_progress(progress)
            self._last_progress_write = time.monotonic()
        if not outcomes:
            return
        accepted = self._backend.ack_many(outcomes, self._worker_name)
        self.settle(outcomes, accepted)
        self._on_written()
