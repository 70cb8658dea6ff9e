"""Decoding stored rows into records; shared by every SQL backend."""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..job import AttemptRecord, JobError, JobRecord, JobState, Progress


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def encode_error(error: JobError | None) -> str | None:
    if error is None:
        return None
    return json.dumps({"type": error.type, "message": error.message, "traceback": error.traceback})


def decode_error(text: str | None) -> JobError | None:
    if not text:
        return None
    data = json.loads(text)
    return JobError(data.get("type", "Error"), data.get("message", ""), data.get("traceback"))


def encode_progress(progress: Progress) -> str:
    return json.dumps({"done": progress.done, "total": progress.total, "message": progress.message})


def decode_progress(text: str | None) -> Progress | None:
    if not text:
        return None
    data = json.loads(text)
    return Progress(data["done"], data.get("total"), data.get("message"))


def job_record(row: Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        task=row["task"],
        queue=row["queue"],
        state=JobState(row["state"]),
        priority=row["priority"],
        args_json=row["args"],
        kwargs_json=row["kwargs"],
        unique_key=row["unique_key"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        run_at=row["run_at"],
        enqueued_at=row["enqueued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        cancel_requested=bool(row["cancel_requested"]),
        progress=decode_progress(row["progress"]),
        result_json=row["result"],
        error=decode_error(row["error"]),
        worker=row["worker"],
    )


def attempt_record(row: Row) -> AttemptRecord:
    error = None
    if row["error_type"] is not None:
        error = JobError(row["error_type"], row["error_message"] or "", row["traceback"])
    return AttemptRecord(
        job_id=row["job_id"],
        attempt=row["attempt"],
        worker=row["worker"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=row["outcome"],
        error=error,
    )


def lease_lost_error(owner: str) -> JobError:
    """What a rescued attempt records, on every backend."""
    return JobError(
        "LeaseExpired",
        f"worker {owner} stopped renewing its lease on the job for a whole lease period while "
        "the database could be written; it was probably killed, frozen or cut off from the "
        "database",
    )


def report_rescue(row: Row, requeued: list[int], failed: list[int], cancelled: list[int]) -> None:
    """File a rescued job under what became of it."""
    if row["cancel_requested"]:
        cancelled.append(row["id"])
    elif row["attempts"] >= row["max_attempts"]:
        failed.append(row["id"])
    else:
        requeued.append(row["id"])
