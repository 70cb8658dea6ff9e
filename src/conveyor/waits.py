"""Why a job waits, and how much of each limit is used, decided from numbers the database gave
(pure: no I/O). The claim applies the limits (backends/store.py, by the rules of limits.py);
this module only explains them, with the same rules, so what an operator reads is what the
claim does.

Times are seconds since the epoch by the database's clock (`now` comes with the numbers), so a
rate limit's next start is right even when this host's clock is off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .limits import Rate, admit


@dataclass(frozen=True, slots=True)
class JobLimits:
    """What may hold one job back: its limit key (None: no task limit applies) with its
    task's limits, that key's rate state and running jobs; its queue's pause and concurrency
    limit with the queue's running jobs; the database's clock."""

    job_id: int
    task: str
    queue: str
    key: str | None
    rate: Rate | None
    concurrency: int | None
    tat: float | None
    running: int
    queue_paused: bool
    queue_concurrency: int | None
    queue_running: int
    now: float


@dataclass(frozen=True, slots=True)
class KeyUse:
    """One key of a limited task that has queued or running jobs."""

    task: str
    key: str
    queued: int
    running: int
    tat: float | None  # its rate state (None: it never started a rate-limited job)


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason a job does not run now. `kind`: queue_paused, queue_concurrency,
    concurrency or rate (a queued job), or parents (a waiting job)."""

    kind: str
    message: str
    running: int | None = None
    limit: int | None = None
    next_at: float | None = None  # rate: when the key may start its next job


def describe_key(key: str) -> str:
    """' per key ...' for a keyed limit; nothing for a task's one shared key ('')."""
    return f" per key {key!r}" if key else ""


def rate_text(rate: Rate) -> str:
    return f"{rate} (burst {rate.burst})" if rate.burst > 1 else str(rate)


def throttled_until(rate: Rate, tat: float | None, now: float) -> float | None:
    """When a key whose rate state is `tat` may next start a job, or None if it may now (the
    rule of limits.admit: the claim's own)."""
    if tat is None:
        return None
    admission = admit(rate, tat, now, 1)
    return None if admission.started else admission.next_at


def _iso(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, ValueError, OSError):  # a damaged rate state
        return "?"


def job_reasons(facts: JobLimits) -> list[Reason]:
    """Why a queued job is not running, most fundamental first; empty when nothing holds it
    back (it waits for a free worker, or its key's earlier jobs)."""
    reasons: list[Reason] = []
    if facts.queue_paused:
        reasons.append(Reason("queue_paused", "queue paused: no worker claims it until "
                              f"`conveyor queues resume {facts.queue}`"))
    if facts.queue_concurrency is not None and facts.queue_running >= facts.queue_concurrency:
        reasons.append(Reason(
            "queue_concurrency",
            f"queue {facts.queue!r} concurrency limit reached: {facts.queue_running} of "
            f"{facts.queue_concurrency} running", facts.queue_running, facts.queue_concurrency))
    if facts.key is None:
        return reasons
    if facts.concurrency is not None and facts.running >= facts.concurrency:
        key = f", key {facts.key!r}" if facts.key else ""
        reasons.append(Reason(
            "concurrency",
            f"concurrency limit reached: {facts.running} of {facts.concurrency} running "
            f"(task {facts.task}{key})", facts.running, facts.concurrency))
    if facts.rate is not None:
        until = throttled_until(facts.rate, facts.tat, facts.now)
        if until is not None:
            reasons.append(Reason(
                "rate", f"rate limited ({rate_text(facts.rate)}{describe_key(facts.key)}): "
                f"next start at {_iso(until)}", next_at=until))
    return reasons


def id_list(ids: Sequence[int]) -> str:
    """'job 4' or 'jobs 4, 7'."""
    return f"job{'' if len(ids) == 1 else 's'} {', '.join(str(i) for i in ids)}"


def parents_reason(pending: Sequence[int], parents: int) -> Reason:
    """Why a waiting job waits: `pending`, the ids of its parents that have not ended, of
    its `parents` in all."""
    if not pending:  # they ended since the job was read: it is being released
        return Reason("parents", "waiting for its parents to end")
    if parents == 1:
        return Reason("parents", f"waiting for its parent to end: {id_list(pending)}")
    if len(pending) == parents:
        return Reason("parents", f"waiting for its {parents} parents to end: "
                      f"{id_list(pending)}")
    return Reason("parents", f"waiting for {len(pending)} of its {parents} parents to end: "
                  f"{id_list(pending)}")


@dataclass(frozen=True, slots=True)
class LimitUse:
    """One limit and how much of it is used now: a task's limits (over all its keys) or a
    queue's concurrency limit. `keys`: keys with queued or running jobs (None for a queue);
    `throttled`: keys with queued jobs their rate holds back now; `at_concurrency`: keys with
    queued jobs at their concurrency limit; `next_at`: the earliest start of a throttled key."""

    kind: str  # "task" or "queue"
    name: str
    rate: Rate | None
    concurrency: int | None
    keyed: bool
    keys: int | None
    running: int
    queued: int
    throttled: int = 0
    at_concurrency: int = 0
    next_at: float | None = None

    @property
    def title(self) -> str:
        return f"task {self.name}" if self.kind == "task" else f"queue {self.name!r}"

    @property
    def held(self) -> bool:
        """Whether the limit holds back some of its queued jobs now."""
        return bool(self.throttled or self.at_concurrency)


def task_use(task: str, rate: Rate | None, concurrency: int | None, keyed: bool,
             keys: Iterable[KeyUse], now: float) -> LimitUse:
    """A task's limits over its keys' numbers (KeyUse of other tasks are skipped)."""
    mine = [key for key in keys if key.task == task]
    throttled = at_concurrency = 0
    next_at = math.inf
    for key in mine:
        if not key.queued:
            continue
        if concurrency is not None and key.running >= concurrency:
            at_concurrency += 1
        if rate is not None:
            until = throttled_until(rate, key.tat, now)
            if until is not None:
                throttled += 1
                next_at = min(next_at, until)
    return LimitUse("task", task, rate, concurrency, keyed, len(mine),
                    sum(key.running for key in mine), sum(key.queued for key in mine),
                    throttled, at_concurrency, next_at if math.isfinite(next_at) else None)


def queue_use(queue: str, concurrency: int, running: int, queued: int) -> LimitUse:
    return LimitUse("queue", queue, None, concurrency, False, None, running, queued,
                    at_concurrency=int(running >= concurrency and queued > 0))


def _seconds(seconds: float) -> str:
    return f"{max(0.0, seconds):.1f} s"


def summary(use: LimitUse, now: float,
            duration: Callable[[float], str] = _seconds) -> str:
    """One line for `conveyor status`: how many wait under the limit, and why.
    `duration` writes a number of seconds for people."""
    parts: list[str] = []
    many = use.keyed and (use.keys or 0) > 1
    if use.concurrency is not None and use.at_concurrency:
        if use.kind == "queue":
            parts.append(f"concurrency limit reached: {use.running} of {use.concurrency} "
                         "running")
        elif many:
            parts.append(f"{use.at_concurrency} of {use.keys} keys at their concurrency "
                         f"limit ({use.concurrency} running each)")
        else:
            parts.append(f"concurrency limit reached: {use.running} of {use.concurrency} "
                         "running")
    if use.rate is not None and use.throttled:
        keys = f" on {use.throttled} of {use.keys} keys" if many else ""
        then = "" if use.next_at is None else f" (next start in {duration(use.next_at - now)})"
        parts.append(f"rate limited {rate_text(use.rate)}{keys}{then}")
    if not parts:
        parts.append("within its limits" + (
            f" ({use.running} of {use.concurrency} running)"
            if use.concurrency is not None and not use.keyed else ""))
    keys = f" over {use.keys} keys" if many else ""
    return f"{use.title}: {use.queued} queued{keys}, {', '.join(parts)}"


def waiting(uses: Sequence[LimitUse]) -> list[LimitUse]:
    """The limits with queued jobs, those holding jobs back first."""
    return sorted((use for use in uses if use.queued),
                  key=lambda use: (not use.held, use.kind, use.name))
