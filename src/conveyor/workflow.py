"""The handle on a stored workflow: its members, their progress, its result, its cancel."""

from __future__ import annotations

import json
from typing import Any, Protocol

from .errors import JobCancelled, JobFailed, JobNotFound
from .job import TERMINAL_STATES, Job, JobError, JobRecord, JobSource, JobState, poll_until
from .records import WorkflowRecord

# A workflow's state: "running" while a member has not ended, then how it ended.
RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"


class WorkflowSource(JobSource, Protocol):
    def fetch_workflow(self, workflow_id: int) -> WorkflowRecord | None: ...

    def cancel_workflow(self, workflow_id: int) -> None: ...


def output_ids(output: str) -> list[int]:
    """The job ids a workflow's stored output names."""
    def ids(item: Any) -> list[int]:
        return [i for sub in item for i in ids(sub)] if isinstance(item, list) else [int(item)]
    return ids(json.loads(output))


def state_of(record: WorkflowRecord) -> str:
    """Running while a member has not ended; then succeeded when every job its result
    comes from succeeded, failed when a member failed, else cancelled."""
    members = {job.id: job for job in record.jobs}
    if any(job.state not in TERMINAL_STATES for job in record.jobs):
        return RUNNING
    outputs = [members.get(job_id) for job_id in output_ids(record.output)]
    if all(job is not None and job.state is JobState.SUCCEEDED for job in outputs):
        return SUCCEEDED
    if any(job.state is JobState.FAILED for job in record.jobs):
        return FAILED
    return CANCELLED


class Workflow:
    """A handle on a stored workflow. Attributes show it as of the last `refresh()`."""

    __slots__ = ("_record", "_source")

    def __init__(self, record: WorkflowRecord, source: WorkflowSource) -> None:
        self._record = record
        self._source = source

    def __repr__(self) -> str:
        return f"<Workflow {self.id} {self.name} {self.state}>"

    @property
    def id(self) -> int:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def record(self) -> WorkflowRecord:
        return self._record

    @property
    def state(self) -> str:
        return state_of(self._record)

    @property
    def jobs(self) -> list[Job]:
        """Its member jobs, in the order they were stored."""
        return [Job(record, self._source) for record in self._record.jobs]

    @property
    def progress(self) -> dict[JobState, int]:
        """Its members counted by state."""
        counts: dict[JobState, int] = {}
        for job in self._record.jobs:
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts

    def refresh(self) -> Workflow:
        record = self._source.fetch_workflow(self.id)
        if record is None:
            raise JobNotFound(f"workflow {self.id} no longer exists")
        self._record = record
        return self

    def cancel(self) -> str:
        """Cancel its waiting and queued members and ask running ones to stop; returns the
        state after."""
        self._source.cancel_workflow(self.id)
        return self.refresh().state

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the jobs its result comes from to end and return that result: the last
        step's, or a list for a group. Raises JobFailed or JobCancelled as Job.result does,
        for the first of them that did not succeed, or TimeoutError."""
        wanted = output_ids(self._record.output)
        members: dict[int, JobRecord] = {}

        def ended() -> bool:
            self.refresh()  # (its jobs include steps reused from other workflows)
            members.clear()
            members.update((job.id, job) for job in self._record.jobs)
            return all(members[i].state in TERMINAL_STATES for i in wanted if i in members)

        poll_until(ended, timeout,
                   lambda: f"workflow {self.id} is still {self.state} after {timeout} s")
        if any(members[i].state is not JobState.SUCCEEDED for i in wanted if i in members):
            failed = [job for job in self._record.jobs if job.state is JobState.FAILED]
            if failed:  # what its result was cancelled for (or failed with), first
                raise _failure(failed[0])
        return _value(json.loads(self._record.output), members)


def _value(output: Any, members: dict[int, JobRecord]) -> Any:
    if isinstance(output, list):
        return [_value(item, members) for item in output]
    job = members.get(int(output))
    if job is None:
        raise JobNotFound(f"job {output} of the workflow no longer exists")
    if job.state is JobState.SUCCEEDED:
        return job.result
    if job.state is JobState.CANCELLED:
        reason = f": {job.error.message}" if job.error else ""
        raise JobCancelled(f"job {job.id} was cancelled{reason}", job_id=job.id)
    raise _failure(job)


def _failure(job: JobRecord) -> JobFailed:
    error = job.error or JobError("UnknownError", "no error was recorded")
    return JobFailed(job.id, error.type, error.message, error.traceback)
