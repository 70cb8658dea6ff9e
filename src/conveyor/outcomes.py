"""How one attempt of a job ended, decided apart from any database write.

The executor returns one of these; the worker's dispatcher writes them in batches. Each names
the lease token it was decided under, so a stale worker's outcome is refused (fencing).

Values, never changed once made; not `frozen` dataclasses only because a frozen dataclass's
__init__ costs about ten times a plain one's, paid for every job a worker runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .job import JobError


@dataclass(slots=True)
class Outcome:
    kind: ClassVar[str] = "outcome"
    job_id: int
    token: int
    attempt: int
    started_at: float
    finished_at: float


@dataclass(slots=True)
class Succeeded(Outcome):
    kind: ClassVar[str] = "succeeded"
    result_json: str


@dataclass(slots=True)
class Retry(Outcome):
    """Failed this attempt; runs again at `run_at` (unless cancel was requested meanwhile)."""

    kind: ClassVar[str] = "retry"
    error: JobError
    run_at: float


@dataclass(slots=True)
class Snoozed(Outcome):
    """The task raised conveyor.Snooze: runs again `delay` seconds from now (by the database's
    clock) and the attempt is not counted. `note` says so, for the attempts table."""

    kind: ClassVar[str] = "snoozed"
    note: JobError
    delay: float


@dataclass(slots=True)
class Failed(Outcome):
    kind: ClassVar[str] = "failed"
    error: JobError


@dataclass(slots=True)
class Cancelled(Outcome):
    kind: ClassVar[str] = "cancelled"
    error: JobError | None = None


_KINDS: dict[str, type[Outcome]] = {
    cls.kind: cls for cls in (Succeeded, Retry, Snoozed, Failed, Cancelled)
}


def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """Plain JSON-ready form, for passing outcomes between processes without pickle."""
    data: dict[str, Any] = {
        "kind": outcome.kind,
        "job_id": outcome.job_id,
        "token": outcome.token,
        "attempt": outcome.attempt,
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
    }
    if isinstance(outcome, Succeeded):
        data["result_json"] = outcome.result_json
    if isinstance(outcome, Retry):
        data["run_at"] = outcome.run_at
    if isinstance(outcome, Snoozed):
        data["delay"] = outcome.delay
        data["note"] = [outcome.note.type, outcome.note.message, outcome.note.traceback]
    error = getattr(outcome, "error", None)
    if error is not None:
        data["error"] = [error.type, error.message, error.traceback]
    return data


def outcome_from_dict(data: dict[str, Any]) -> Outcome:
    cls = _KINDS[data["kind"]]
    fields: dict[str, Any] = {
        key: data[key] for key in ("job_id", "token", "attempt", "started_at", "finished_at")
    }
    if "result_json" in data:
        fields["result_json"] = data["result_json"]
    if "run_at" in data:
        fields["run_at"] = data["run_at"]
    if "delay" in data:
        fields["delay"] = data["delay"]
        fields["note"] = JobError(*data["note"])
    if data.get("error") is not None:
        fields["error"] = JobError(*data["error"])
    return cls(**fields)
