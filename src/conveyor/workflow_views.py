"""Workflows as plain JSON-ready data, and their members as a tree, shared by `conveyor
workflows` (and, later, the dashboard). The app layer: reads through the Inspector, no
rendering; times are ISO 8601 in UTC, as in views.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import Inspector
from .job import JobRecord, JobState
from .records import WorkflowRecord, WorkflowSummary
from .views import STATE_ORDER, iso
from .workflow import RUNNING, state_of

UNKNOWN = "unknown"  # the state of a workflow whose stored result source cannot be read


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a workflow, where its tree shows it: `depth` levels under a root, under
    its first parent (`under`; None for a root), marked as also waiting on its other parents.
    `parents` and `children`: every edge it has (parents outside the workflow included)."""

    job: JobRecord
    depth: int
    under: int | None
    also_waits_on: tuple[int, ...]
    parents: tuple[int, ...]
    children: tuple[int, ...]


def member_tree(jobs: Sequence[JobRecord], edges: Iterable[tuple[int, int]]) -> list[Member]:
    """A workflow's members in tree order: each root (no parent among the members) in id
    order, each followed by the members under it, depth first. A member with several parents
    comes once, under its first parent among the members (the smallest id), and is marked as
    also waiting on the others. Built without recursion: a chain of any length is fine."""
    members = {job.id: job for job in jobs}
    parents: dict[int, list[int]] = {job_id: [] for job_id in members}
    children: dict[int, list[int]] = {job_id: [] for job_id in members}
    for parent, child in edges:
        if child not in members:
            continue
        parents[child].append(parent)
        if parent in members:
            children[parent].append(child)
    under: dict[int, int | None] = {}
    below: dict[int | None, list[int]] = {}
    for job_id in sorted(members):
        inside = sorted(p for p in parents[job_id] if p in members)
        first = inside[0] if inside else None
        under[job_id] = first
        below.setdefault(first, []).append(job_id)
    ordered: list[Member] = []
    seen: set[int] = set()

    def walk(root: int) -> None:
        stack = [(root, 0)]
        while stack:
            job_id, depth = stack.pop()
            if job_id in seen:
                continue
            seen.add(job_id)
            first = under[job_id]
            ordered.append(Member(
                members[job_id], depth, first,
                tuple(sorted(p for p in parents[job_id] if p != first)),
                tuple(sorted(parents[job_id])), tuple(sorted(children[job_id]))))
            stack.extend((child, depth + 1) for child in reversed(below.get(job_id, [])))

    for root in below.get(None, []):
        walk(root)
    for job_id in sorted(members):  # only edges that loop (a damaged table) leave any out
        if job_id not in seen:
            walk(job_id)
    return ordered


def duration(job: JobRecord, now: float) -> float | None:
    """How long its latest attempt ran (so far, while it runs); None if it never started."""
    if job.started_at is None:
        return None
    end = job.finished_at if job.finished_at is not None else now
    return max(0.0, end - job.started_at)


def result_source(record: WorkflowRecord) -> Any:
    """The job ids its result comes from, shaped as the result is (an id, or a list for a
    group); None when the stored text cannot be read."""
    try:
        return json.loads(record.output)
    except ValueError:
        return None


def workflow_state(record: WorkflowRecord) -> str:
    try:
        return state_of(record)
    except (ValueError, TypeError):  # a damaged result source
        return UNKNOWN


def counts_view(counts: dict[JobState, int]) -> dict[str, int]:
    return {state.value: counts.get(state, 0) for state in STATE_ORDER}


def member_counts(record: WorkflowRecord) -> dict[JobState, int]:
    counts: dict[JobState, int] = {}
    for job in record.jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    return counts


def member_view(member: Member, now: float) -> dict[str, Any]:
    job = member.job
    took = duration(job, now)
    return {
        "id": job.id,
        "task": job.task,
        "state": job.state.value,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "duration": None if took is None else round(took, 3),
        "depth": member.depth,
        "under": member.under,
        "also_waits_on": list(member.also_waits_on),
        "parents": list(member.parents),
        "children": list(member.children),
    }


def workflow_view(record: WorkflowRecord, edges: Iterable[tuple[int, int]],
                  now: float) -> dict[str, Any]:
    """A workflow as JSON: its state, where its result comes from, its members counted by
    state and, in tree order (see member_tree), each member. The tree is flat (`depth` and
    `under` say where each member hangs), so a long chain is no deeper than a group."""
    return {
        "id": record.id,
        "name": record.name,
        "state": workflow_state(record),
        "created_at": iso(record.created_at),
        "on_parent_failure": record.on_parent_failure,
        "result_from": result_source(record),
        "jobs": len(record.jobs),
        "counts": counts_view(member_counts(record)),
        "members": [member_view(member, now) for member in member_tree(record.jobs, edges)],
    }


def summary_state(inspector: Inspector, summary: WorkflowSummary) -> str:
    """A listed workflow's state: running while a member has not ended (its counts say so);
    once every member ended, how it ended, read as Workflow.state reads it."""
    if any(count and not state.is_terminal for state, count in summary.counts.items()):
        return RUNNING
    record = inspector.workflow(summary.id)
    if record is None:  # deleted since it was listed
        return UNKNOWN
    return workflow_state(record)


def workflow_summary_view(summary: WorkflowSummary, state: str) -> dict[str, Any]:
    return {
        "id": summary.id,
        "name": summary.name,
        "state": state,
        "created_at": iso(summary.created_at),
        "jobs": sum(summary.counts.values()),
        "counts": counts_view(summary.counts),
    }


def workflows_overview(inspector: Inspector, limit: int = 50) -> list[dict[str, Any]]:
    """The latest workflows, newest first, each with its state and members by state."""
    return [workflow_summary_view(summary, summary_state(inspector, summary))
            for summary in inspector.workflows(limit)]
