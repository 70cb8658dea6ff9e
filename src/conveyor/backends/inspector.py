"""Read-only views over conveyor's tables, the same for every SQL backend: each backend's named
SQL files return the same columns, so only how a named query is run differs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..job import AttemptRecord, JobRecord, JobState
from ..limits import Rate
from ..records import (
    JobLink,
    QueueSettings,
    QueueStats,
    ScheduleRecord,
    TaskInfo,
    WorkerRecord,
    WorkflowRecord,
    WorkflowSummary,
)
from ..waits import JobLimits, KeyUse
from .rows import (
    Row,
    attempt_record,
    job_record,
    optional_time,
    schedule_record,
    task_info,
    worker_record,
)

ReadAll = Callable[[str, Mapping[str, Any] | None], Sequence[Row]]


class SQLInspector:
    """The Inspector protocol over a backend's `read_all(query_name, params)`."""

    def __init__(self, read_all: ReadAll, schema_version: Callable[[], int]) -> None:
        self._read_all = read_all
        self._schema_version = schema_version

    def get(self, job_id: int) -> JobRecord | None:
        rows = self._read_all("get_job", {"id": job_id})
        return job_record(rows[0]) if rows else None

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
    ) -> list[JobRecord]:
        rows = self._read_all("list_jobs", {
            "state": None if state is None else str(state), "queue": queue, "task": task,
            "limit": limit,
        })
        return [job_record(row) for row in rows]

    def workflow(self, workflow_id: int) -> WorkflowRecord | None:
        rows = self._read_all("get_workflow", {"id": workflow_id})
        if not rows:
            return None
        row = rows[0]
        ids = [int(job_id) for job_id in json.loads(row["jobs"])]
        found = {int(job["id"]): job_record(job)
                 for job in self._read_all("workflow_jobs", {"ids": ids})}
        # In the order of its plan; once, a step reused twice; a pruned job is left out.
        jobs = tuple(found[job_id] for job_id in dict.fromkeys(ids) if job_id in found)
        return WorkflowRecord(int(row["id"]), str(row["name"]), float(row["created_at"]),
                              str(row["output"]), str(row["on_parent_failure"]), jobs)

    def workflow_edges(self, workflow_id: int) -> list[tuple[int, int]]:
        """(parent, child) of every edge between its members."""
        return [(int(row["parent"]), int(row["child"]))
                for row in self._read_all("workflow_edges", {"id": workflow_id})]

    def workflows(self, limit: int = 50) -> list[WorkflowSummary]:
        """The latest workflows, newest first, with their members counted by state."""
        found: dict[int, WorkflowSummary] = {}
        for row in self._read_all("list_workflows", {"limit": limit}):
            summary = found.setdefault(int(row["id"]), WorkflowSummary(
                int(row["id"]), str(row["name"]), float(row["created_at"]), {}))
            if row["state"] is not None:
                summary.counts[JobState(row["state"])] = int(row["n"])
        return list(found.values())

    def job_links(self, job_id: int) -> tuple[list[JobLink], list[JobLink]]:
        """A job's parents and children."""
        def links(query: str) -> list[JobLink]:
            return [JobLink(int(row["id"]), str(row["task"]), JobState(row["state"]))
                    for row in self._read_all(query, {"id": job_id})]
        return links("job_parents"), links("job_children")

    def count_by_state(self) -> dict[str, dict[JobState, int]]:
        counts: dict[str, dict[JobState, int]] = {}
        for row in self._read_all("count_by_state", None):
            counts.setdefault(row["queue"], {})[JobState(row["state"])] = int(row["n"])
        return counts

    def attempts(self, job_id: int) -> list[AttemptRecord]:
        return [attempt_record(row) for row in self._read_all("list_attempts",
                                                              {"job_id": job_id})]

    def schema_version(self) -> int:
        return self._schema_version()

    def queue_stats(self, window: float = 60.0) -> list[QueueStats]:
        counts = self.count_by_state()
        rows = self._read_all("queue_stats", {"window": window})
        return [
            QueueStats(
                queue=row["queue"],
                counts=counts.get(row["queue"], {}),
                oldest_queued_at=optional_time(row["oldest_queued_at"]),
                finished_recently=int(row["finished_recently"] or 0),
            )
            for row in rows
        ]

    def queue_settings(self) -> list[QueueSettings]:
        return [QueueSettings(str(row["name"]), bool(row["paused"]), bool(row["lifo"]),
                              float(row["updated_at"]),
                              None if row["concurrency"] is None else int(row["concurrency"]))
                for row in self._read_all("queue_settings", None)]

    def limited_jobs_waiting(self) -> bool:
        """Whether any queued job carries a limit key."""
        rows = self._read_all("limited_waiting", None)
        return bool(rows and rows[0]["waiting"])

    def limited_tasks(self) -> list[TaskInfo]:
        """The tasks registered with a rate or concurrency limit."""
        return [task_info(row) for row in self._read_all("limited_tasks", None)]

    def job_limits(self, job_id: int) -> JobLimits | None:
        """What may hold a job back (its limits, their use, its queue's), by the database's
        clock; None for no such job."""
        rows = self._read_all("job_limits", {"id": job_id})
        if not rows:
            return None
        row = rows[0]
        rate = None
        if row["rate_count"] is not None:
            rate = Rate(int(row["rate_count"]), float(row["rate_per"]),
                        int(row["rate_burst"] or 1))
        key = row["limit_key"]
        return JobLimits(
            int(row["id"]), str(row["task"]), str(row["queue"]),
            None if key is None else str(key), rate,
            None if row["concurrency"] is None else int(row["concurrency"]),
            None if row["tat"] is None else float(row["tat"]), int(row["running"]),
            bool(row["queue_paused"]),
            None if row["queue_concurrency"] is None else int(row["queue_concurrency"]),
            int(row["queue_running"]), float(row["now"]))

    def limit_keys(self) -> tuple[float | None, list[KeyUse]]:
        """Every limit key with queued or running jobs, and the database's clock as read
        (None when there is none: then no key can be throttled)."""
        rows = self._read_all("limit_keys", None)
        now = float(rows[0]["now"]) if rows else None
        return now, [KeyUse(str(row["task"]), str(row["limit_key"]), int(row["queued"]),
                            int(row["running"]),
                            None if row["tat"] is None else float(row["tat"]))
                     for row in rows]

    def task_queues(self) -> list[str]:
        return sorted(str(row["queue"]) for row in self._read_all("task_queues", None))

    def runnable_queues(self) -> list[str]:
        return sorted(str(row["queue"]) for row in self._read_all("runnable_queues", None))

    def by_unique_key(self, unique_key: str) -> JobRecord | None:
        # Two indexed reads (the unique index, then the key index backwards), not one sort
        # over every job that ever had the key.
        for query in ("find_active_by_unique_key", "latest_by_unique_key"):
            rows = self._read_all(query, {"unique_key": unique_key})
            if rows:
                return job_record(rows[0])
        return None

    def registered_tasks(self, names: Sequence[str]) -> dict[str, TaskInfo]:
        rows = self._read_all("registered_tasks", {"names": list(names)})
        return {row["name"]: task_info(row) for row in rows}

    def schedules(self, name: str | None = None) -> list[ScheduleRecord]:
        """Every schedule (or the one named), inactive ones included, with its last run."""
        return [schedule_record(row) for row in self._read_all("list_schedules",
                                                               {"name": name})]

    def workers(self) -> list[WorkerRecord]:
        return [worker_record(row) for row in self._read_all("list_workers", None)]
