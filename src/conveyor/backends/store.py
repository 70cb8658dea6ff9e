"""The storage verbs, written once over a dialect: each verb's transaction, its statements, how
outcomes and attempts are recorded and how a rescue is classified are the same on every
database; only the named SQL files and the dialect's plumbing differ.

Adding a verb: one method here plus one SQL file per dialect.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .. import sql
from ..errors import InvalidInput, SchemaMismatch
from ..job import TERMINAL_STATES, JobRecord, JobState
from ..lease_watch import ObservedLease
from ..limits import Waiting, admit, allocate
from ..outcomes import Cancelled, Failed, Outcome, Retry, Snoozed, Succeeded
from ..policy import AttemptFacts, Cause, decide, lost_by
from ..records import (
    ClaimedJob,
    ClaimPlan,
    EnqueueResult,
    FiredSlot,
    HeartbeatReply,
    JobTies,
    Lease,
    Location,
    NewJob,
    NewWorkflow,
    ProgressUpdate,
    RescueReport,
    RetryReport,
    ScheduleDefinition,
    ScheduleState,
    SlotRun,
    StoredBatch,
    TaskInfo,
    WorkerInfo,
    WorkerRecord,
    WorkflowRecord,
    column,
)
from . import dependents
from .dialect import Dialect, KeyClash, Result, Row, Session
from .inspector import SQLInspector
from .rows import (
    claimed_jobs,
    encode_error,
    encode_progress,
    job_record,
    safe_float,
    safe_int,
    schedule_state,
    stored_concurrency,
    stored_rate,
    worker_record,
)
from .wakeups import Subscription

# Under READ COMMITTED (PostgreSQL) the job holding a unique key may end between the clash and
# the lookup of the holder: the key is free then, and trying again succeeds.
UNIQUE_RACE_RETRIES = 5
# Limit keys a round reads per queue: one more than its free slots, at most LIMIT_GROUPS; the
# next round reads on from the last (keys are served in turn), and a worker that claimed
# something under limits claims again at once, so keys at their limit cost a round, not a
# wait.
LIMIT_GROUPS = 64
_FIRST_KEY = ("", "")  # before every (task, limit key): task names are never empty
# While keys remain to be read in a cycle and none read could start a job, read on this soon.
READ_ON = 0.01

_NO_TIES = JobTies()

_ACK_STATEMENTS: Mapping[type[Outcome], str] = {
    Retry: "ack_retry", Snoozed: "ack_snooze", Failed: "ack_failed",
    Cancelled: "ack_cancelled"}


def _job_params(job: NewJob) -> dict[str, Any]:
    return {
        "task": job.task, "queue": job.queue, "priority": job.priority,
        "args": job.args_json, "kwargs": job.kwargs_json, "max_attempts": job.max_attempts,
        "delay": job.delay or None, "run_at": job.run_at, "backoff": job.backoff,
        "timeout": job.timeout, "soft_timeout": job.soft_timeout, "unique_key": job.unique_key,
        "limit_key": job.limit_key,
    }


def _placed(job: NewJob, now: float) -> tuple[float, JobState]:
    """The run_at and state enqueue.sql gives `job` stored at the database's time `now`."""
    run_at = job.due(now)
    return run_at, JobState.SCHEDULED if run_at > now else JobState.QUEUED


def _stored(job: NewJob, job_id: int, now: float) -> JobRecord:
    """The record of `job` stored as `job_id` at the database's time `now`."""
    run_at, state = _placed(job, now)
    return JobRecord(int(job_id), job.task, job.queue, state, job.priority, job.args_json,
                     job.kwargs_json, job.unique_key, 0, job.max_attempts, run_at, now)


def _stored_alone(job: NewJob, job_id: int, now: float) -> StoredBatch:
    """`_stored` as a batch of one, its record made when first read: most callers of a single
    enqueue read no more than the job's id, and the record costs a tenth of its Python."""
    run_at, state = _placed(job, now)
    return StoredBatch([int(job_id)], ([job.task], [job.queue], [state], [job.priority],
                                       [job.args_json], [job.kwargs_json], [job.max_attempts],
                                       [run_at]), now, None)


_FLOAT_OR_NONE = frozenset({float, type(None)})


def _batchable(jobs: Sequence[NewJob]) -> bool:
    """Whether `jobs` go in as one batch: none has a unique key or ties."""
    size = len(jobs)
    return (size > 1 and column(jobs, "unique_key").count(None) == size
            and column(jobs, "ties").count(None) == size)


def _stored_batch(jobs: Sequence[NewJob], ids: Sequence[int], now: float,
                  workflow: int | None = None) -> tuple[StoredBatch, dict[str, list[Any]]]:
    """The records of `jobs` stored as `ids` at the database's time `now` (as `_stored`
    makes them one by one, made when asked for), and enqueue_batch's parameters: one list
    per column."""
    task, queue, priority, args, kwargs, attempts = (column(jobs, field) for field in (
        "task", "queue", "priority", "args_json", "kwargs_json", "max_attempts"))
    size = len(jobs)
    if (column(jobs, "delay").count(None) == size
            and column(jobs, "run_at").count(None) == size):  # all due now: the usual
        due, states = [now] * size, [JobState.QUEUED] * size
        state_values = [JobState.QUEUED.value] * size
    else:
        due = [job.due(now) for job in jobs]
        states = [JobState.SCHEDULED if at > now else JobState.QUEUED for at in due]
        state_values = [state.value for state in states]
    ids = list(ids)
    stored = StoredBatch(ids, (task, queue, states, priority, args, kwargs, attempts, due), now,
                         workflow)
    columns = {
        "id": ids, "task": task, "queue": queue,
        "state": state_values, "priority": priority, "args": args,
        "kwargs": kwargs, "max_attempts": attempts, "run_at": _floats(due),
        "enqueued_at": [now] * size, "limit_key": column(jobs, "limit_key"),
        **{name: _floats(column(jobs, name)) for name in ("backoff", "timeout",
                                                          "soft_timeout")},
    }
    return stored, columns


def _floats(values: list[Any]) -> list[Any]:
    """`values` (numbers or None) as floats: a driver sends a list as an array of one type,
    and a hand-built job may give 2 where another gives 2.5."""
    if set(map(type, values)) <= _FLOAT_OR_NONE:
        return values
    return [None if value is None else float(value) for value in values]


def _with_ids(feed: str | None, ids: Sequence[int]) -> str | None:
    """A feed of workflow indexes as one of the jobs' ids."""
    if feed is None:
        return None

    def mapped(item: Any) -> Any:
        return [mapped(i) for i in item] if isinstance(item, list) else ids[int(item)]

    return json.dumps(mapped(json.loads(feed)))


def _ending_columns(outcomes: Sequence[Outcome], keep_run_at: bool) -> dict[str, list[Any]]:
    """The columns of an ack_* statement for `outcomes`, all of one kind."""
    columns: dict[str, list[Any]] = {"id": [o.job_id for o in outcomes],
                                     "token": [o.token for o in outcomes]}
    first = outcomes[0]
    if not isinstance(first, Snoozed):
        columns["error"] = [encode_error(getattr(o, "error", None)) for o in outcomes]
    if isinstance(first, Retry):
        retries = [o for o in outcomes if isinstance(o, Retry)]
        columns["delay"] = [max(0.0, float(o.run_at - o.finished_at)) for o in retries]
        columns["run_at"] = [float(o.run_at) if keep_run_at else None for o in retries]
    elif isinstance(first, Snoozed):
        columns["delay"] = [float(o.delay) for o in outcomes if isinstance(o, Snoozed)]
    return columns


def _worker_params(worker: WorkerInfo, takeover_after: float,
                   gone: WorkerRecord | None) -> dict[str, Any]:
    return {
        "name": worker.name, "host": worker.host, "pid": worker.pid,
        "queues": json.dumps(list(worker.queues)), "concurrency": worker.concurrency,
        "pool": worker.pool, "takeover_after": takeover_after,
        "gone_host": gone.host if gone else None, "gone_pid": gone.pid if gone else None,
        "gone_started": gone.started_at if gone else None,
    }


def start_order(claimed: list[ClaimedJob], plan: ClaimPlan | None) -> list[ClaimedJob]:
    """The order the pool starts a round's jobs in (it may hold many: prefetch): by priority,
    then each queue's order (a LIFO queue's newest first), weighted queues interleaved by
    their weights (the k-th job of a queue of weight w at k / w). (Within one priority, a
    LIFO queue's jobs and a FIFO queue's compare by run_at negated and not: an order, not a
    promise; a worker mixing the two kinds gets both served, one round at a time.)"""
    lifo = plan.lifo if plan is not None else frozenset()
    claimed.sort(key=lambda job: (job.priority, -job.run_at, -job.id) if job.queue in lifo
                 else (job.priority, job.run_at, job.id))
    if plan is None or not plan.weights:
        return claimed
    seen: dict[tuple[int, str], int] = {}
    keys: dict[int, tuple[int, float]] = {}
    for job in claimed:
        rank = seen[job.priority, job.queue] = seen.get((job.priority, job.queue), 0) + 1
        keys[job.id] = (job.priority, rank / plan.weights.get(job.queue, 1))
    return sorted(claimed, key=lambda job: keys[job.id])  # (stable: each queue's order kept)


def _claim_statement(queues: Sequence[str], limit: int, owner: str, lease: float,
                     plan: ClaimPlan | None) -> tuple[str, dict[str, Any]]:
    """The claim for this plan: plain claim.sql unless a queue is LIFO or weighted, so a
    worker without either runs exactly the statement it always did."""
    params: dict[str, Any] = {"queues": list(queues), "limit": limit, "owner": owner,
                              "lease": lease}
    if plan is None:
        return "claim", params
    lifo = [queue in plan.lifo for queue in queues]
    if plan.weights:
        return "claim_weighted", {
            **params, "lifo": lifo,
            "start": [float(plan.starts.get(queue, 0.0)) for queue in queues],
            "weight": [float(plan.weights.get(queue, 1)) for queue in queues]}
    if any(lifo):
        return "claim_lifo", {**params, "lifo": lifo}
    return "claim", params


def _limited_group(queue: str, row: Any) -> Waiting:
    return Waiting(queue, str(row["task"]), str(row["limit_key"]), stored_rate(row),
                   safe_float(row["tat"], 0.0), stored_concurrency(row["concurrency"]),
                   safe_int(row["running"], 0))


class Store:
    """Every capability of base.Backend over one database, reached through `db`."""

    def __init__(self, db: Dialect, *, auto_migrate: bool = True) -> None:
        self.db = db
        # Where this process's next limited claim starts reading each queue's keys, and when
        # (by this host's clock) a rate-limited job it saw may next start.
        self._limit_cursor: dict[str, tuple[str, str]] = {}
        self._limits_wake: float | None = None
        self._limits_busy = False  # jobs waited under limits at the last look
        self._cycle_wake = math.inf  # earliest start among the keys read this cycle
        self._capped_first: dict[str, bool] = {}  # a capped queue's plain jobs go first
        # Jobs this process claimed that have followers (children, callbacks): their end
        # releases them. A job that gained followers after its claim is found at its ack.
        self._followed: set[int] = set()
        self.dialect = db.name
        self.inspector = SQLInspector(db.read, self.schema_version)
        if auto_migrate:  # the schema follows the code, on first use
            try:
                self.migrate(auto=True)
            except BaseException:
                db.close()
                raise

    @property
    def location(self) -> Location:
        return self.db.location

    def close(self) -> None:
        self.db.close()

    def subscribe(self, callback: Callable[[], None]) -> Subscription:
        return self.db.subscribe(callback)

    def renewal_blocked(self) -> bool:
        return self.db.renewal_blocked()

    @property
    def round_size(self) -> int:
        return self.db.round_size

    # -- schema ----------------------------------------------------------------------

    def schema_version(self) -> int:
        present = self.db.read("migrations_table_exists")
        if not present or not present[0]["present"]:
            return 0
        rows = self.db.read("schema_version")
        return int(rows[0]["version"]) if rows else 0

    def migrate(self, *, auto: bool = False) -> int:
        """Bring the schema up to date; returns the version. A newer schema is refused; with
        `auto` (on open), so is an older one unless the dialect upgrades on open."""
        known = sql.migrations(self.dialect)
        latest = known[-1][0]
        with self.db.transaction() as s:
            s.run("lock_migrations")
            current = 0
            if s.run("migrations_table_exists").all()[0]["present"]:
                current = int(s.run("schema_version").all()[0]["version"])
            if current > latest:
                raise SchemaMismatch(
                    f"the database schema of {self.location} is version {current}, newer than "
                    f"the {latest} this conveyor understands; upgrade conveyor on this host")
            if current == latest:
                return latest
            if auto and current != 0 and not self.db.upgrades_on_open:
                raise SchemaMismatch(
                    f"the database schema of {self.location} is version {current}, older than "
                    f"the {latest} this conveyor needs; run `conveyor db migrate` once (then "
                    "restart workers)")
            s.run("create_migrations_table")
            for version, name, script in known:
                if version > current:
                    s.script(script)
                    s.run("record_migration", {"version": version, "name": name})
        if auto and current == 0 and not self.db.upgrades_on_open:
            # (A new SQLite file was announced as it was created.)
            self.db.log.warning(
                "created conveyor's tables, empty, in %s: if your jobs are elsewhere, give "
                "this process the same URL (--url or CONVEYOR_URL) as the processes that "
                "enqueue and run them", self.location)
        return latest

    # -- enqueue ---------------------------------------------------------------------

    def enqueue_many(
        self, jobs: Sequence[NewJob], *, connection: Any = None
    ) -> Sequence[EnqueueResult]:
        if not jobs:
            return []
        if connection is not None:
            with self.db.caller_session(connection) as s:
                return self._enqueue_in(s, jobs)
        if len(jobs) == 1:  # the common enqueue, kept short: one cached statement
            job = jobs[0]
            if job.unique_key is None and job.ties is None:
                # Nothing to decide inside a transaction (no key can clash): one statement,
                # one round trip on a server.
                [row] = self.db.statement("enqueue", _job_params(job), notify=job.queue)
                return _stored_alone(job, row["id"], float(row["enqueued_at"]))
            with self.db.transaction() as s:
                result = self._enqueue_one(s, job)
                if result.created:
                    s.notify(result.record.queue)
            return [result]
        with self.db.transaction() as s:
            return self._enqueue_in(s, jobs)

    def _enqueue_in(self, s: Session, jobs: Sequence[NewJob]) -> Sequence[EnqueueResult]:
        if _batchable(jobs):
            # Ids and the database's time first, so the rows go in as plain values.
            reserved = s.run("reserve_ids", {"count": len(jobs)}).one()
            assert reserved is not None
            stored, columns = _stored_batch(jobs, json.loads(reserved["ids"]),
                                            float(reserved["now"]))
            s.batch("enqueue_batch", columns)
            for queue in sorted(set(columns["queue"])):
                s.notify(queue)
            return stored
        results = [self._enqueue_one(s, job) for job in jobs]
        for queue in sorted({r.record.queue for r in results if r.created}):
            s.notify(queue)
        return results

    def _enqueue_one(self, s: Session, job: NewJob) -> EnqueueResult:
        if job.ties is not None:
            return self._enqueue_linked(s, job, job.ties.depends_on)
        row = self._insert(s, "enqueue", _job_params(job), job)
        if isinstance(row, JobRecord):
            return EnqueueResult(row, created=False)
        return EnqueueResult(_stored(job, row["id"], float(row["enqueued_at"])), created=True)

    def _insert(self, s: Session, statement: str, params: Mapping[str, Any], job: NewJob
                ) -> Row | JobRecord:
        """Insert `job` by `statement`: its row, or, when a waiting or running job holds its
        unique key, that job's record."""
        for _ in range(UNIQUE_RACE_RETRIES if job.unique_key is not None else 1):
            row = s.run(statement, params).one()
            if row is not None:
                return row
            holder = s.run("find_active_by_unique_key", {"unique_key": job.unique_key}).one()
            if holder is not None:
                return job_record(holder)
        raise RuntimeError(f"enqueue of {job.task!r}: unique key {job.unique_key!r} kept "
                           "changing hands; enqueue again")

    def _enqueue_linked(
        self, s: Session, job: NewJob, parents: Sequence[int], *, feed: str | None = None,
        workflow: int | None = None, followers: bool = False,
        known: Mapping[int, str] | None = None, done_parents: Sequence[int] = (),
    ) -> EnqueueResult:
        """One job that may wait for `parents` (stored jobs; `known`: the states of those
        stored in this transaction), be fed by them (`feed`, of job ids), have callbacks or
        reuse a result. Its state follows from its parents': waiting while one has not
        ended, cancelled if one failed and its policy says so, else runnable and fed.
        `done_parents`: jobs it is recorded as following that have ended (a callback's)."""
        ties = job.ties or _NO_TIES
        if ties.reuse_for is not None and job.unique_key is not None:
            reusable = s.run("reusable_by_key", {"unique_key": job.unique_key,
                                                 "window": ties.reuse_for}).one()
            if reusable is not None:
                return EnqueueResult(job_record(reusable), created=False)
        wanted = sorted(set(parents))
        states: dict[int, str] = {}
        rows: dict[int, Row] = {}
        outside = [p for p in wanted if known is None or p not in known]
        if outside:
            rows = {int(row["id"]): row for row in s.run("parents_of", {"ids": outside}).all()}
            missing = [p for p in outside if p not in rows]
            if missing:
                raise InvalidInput(
                    f"cannot enqueue {job.task!r}: depends_on names job {missing[0]}, which "
                    "does not exist (it was never enqueued, or was deleted or pruned)")
            states.update({p: str(row["state"]) for p, row in rows.items()})
        if known is not None:
            states.update({p: known[p] for p in wanted if p in known})
        ended = dependents.ENDED
        pending = sum(1 for p in wanted if states[p] not in ended)
        bad = [p for p in wanted if states[p] in ended and states[p] != "succeeded"]
        args, state, error = job.args_json, None, None
        if pending:
            state = "waiting"
        elif bad and ties.on_parent_failure != "run":
            state, error = "cancelled", dependents.dependency_error(bad[0], states[bad[0]])
        elif feed is not None:
            decoded = json.loads(feed)
            results = dependents.results_of(s, dependents.feed_ids(decoded), dict(rows))
            args = dependents.fed_arguments(args, dependents.fed_value(decoded, results))
        params = {**_job_params(job), "args": args, "state": state, "error": error,
                  "workflow": workflow, "pending_parents": pending,
                  "on_parent_failure": ties.on_parent_failure if wanted else None,
                  "feed": feed, "followers": followers or ties.callbacks is not None,
                  "callbacks": ties.callbacks}
        row = self._insert(s, "enqueue_linked", params, job)
        if isinstance(row, JobRecord):
            return EnqueueResult(row, created=False)
        job_id = int(row["id"])
        edges = [(p, states[p] in ended) for p in wanted]
        edges.extend((p, True) for p in done_parents)
        if edges:
            s.batch("add_edges", {"parent": [p for p, _ in edges],
                                  "child": [job_id] * len(edges),
                                  "done": [done for _, done in edges]})
        gaining = [p for p in outside if states[p] not in ended]
        if gaining:
            s.run("mark_followers", {"ids": gaining})
        record = replace(_stored(job, job_id, float(row["enqueued_at"])),
                         state=JobState(row["state"]), args_json=args, workflow=workflow,
                         pending_parents=pending, run_at=float(row["run_at"]))
        return EnqueueResult(record, created=True)

    def enqueue_workflow(self, workflow: NewWorkflow) -> WorkflowRecord:
        """Every job and edge of a workflow in one transaction: all of it, or nothing."""
        with self.db.transaction() as s:
            row = s.run("add_workflow", {"name": workflow.name,
                                         "on_parent_failure": workflow.on_parent_failure}).one()
            assert row is not None
            workflow_id = int(row["id"])
            nodes = workflow.jobs
            has_children = [False] * len(nodes)
            for node in nodes:
                for parent in node.parents:
                    has_children[parent] = True
            ids = [0] * len(nodes)
            known: dict[int, str] = {}
            records: list[JobRecord | None] = [None] * len(nodes)
            roots = [i for i, node in enumerate(nodes)
                     if not node.parents and node.feed is None and node.job.ties is None
                     and node.job.unique_key is None]
            if len(roots) > 1:  # (a chord's members: one batch, as enqueue_many)
                reserved = s.run("reserve_ids", {"count": len(roots)}).one()
                assert reserved is not None
                stored, columns = _stored_batch([nodes[i].job for i in roots],
                                                json.loads(reserved["ids"]),
                                                float(reserved["now"]), workflow_id)
                s.batch("enqueue_members", {
                    **columns, "workflow": [workflow_id] * len(roots),
                    "followers": [has_children[i] for i in roots]})
                for index, i in enumerate(roots):
                    record = stored.record(index)
                    ids[i], records[i] = record.id, record
                    known[record.id] = record.state.value
            batched = set(roots) if len(roots) > 1 else set()
            for i, node in enumerate(nodes):
                if i in batched:
                    continue
                result = self._enqueue_linked(
                    s, node.job, [ids[p] for p in node.parents],
                    feed=_with_ids(node.feed, ids), workflow=workflow_id,
                    followers=has_children[i], known=known)
                ids[i], records[i] = result.record.id, result.record
                if result.created:  # (a job found by its key is read as a parent)
                    known[result.record.id] = result.record.state.value
            output = _with_ids(workflow.output, ids)
            assert output is not None
            s.run("set_workflow_output", {"id": workflow_id, "output": output,
                                          "jobs": json.dumps(ids)})
            for queue in sorted({r.queue for r in records if r is not None
                                 and r.state in (JobState.QUEUED, JobState.SCHEDULED)}):
                s.notify(queue)
        members = tuple(r for r in records if r is not None)
        created = min((r.enqueued_at for r in members), default=time.time())
        return WorkflowRecord(workflow_id, workflow.name, created, output,
                              workflow.on_parent_failure, members)

    # -- claiming and acknowledging ----------------------------------------------------

    def ack_and_claim(
        self,
        outcomes: Sequence[Outcome],
        owner: str,
        queues: Sequence[str],
        limit: int,
        lease: float,
        progress: Sequence[ProgressUpdate] = (),
        plan: ClaimPlan | None = None,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """A busy worker pays for one transaction (one round trip on a server) per round."""
        limit = limit if queues else 0
        if limit <= 0 and not outcomes and not progress:
            return [], []
        claim: Result | None = None
        with self.db.transaction(worker=True, pipeline=True) as s:
            if progress:
                s.batch("save_progress", {
                    "id": [u.lease.job_id for u in progress],
                    "token": [u.lease.token for u in progress],
                    "progress": [encode_progress(u.progress) for u in progress]})
            settle = self._ack_in(s, outcomes, owner) if outcomes else None
            limited: list[Result] = []
            probe: list[tuple[str, Result]] = []
            if limit > 0:
                s.run("promote_due")
                if plan is None or not (plan.limited or plan.capped):
                    self._limits_busy, self._limits_wake = False, None  # (limits gone)
                    claim = s.run(*_claim_statement(queues, limit, owner, lease, plan))
                elif self._limits_busy:
                    limited, claim = self._claim_limited_first(s, queues, limit, owner, lease,
                                                               plan)
                else:
                    # Nothing waited under limits at the last look: the plain claim, and a
                    # look (read after the transaction, in the same round trip) at whether
                    # something waits now. A worker pays nothing more for limits on other
                    # tasks.
                    plain = [queue for queue in queues if queue not in plan.capped]
                    if plain:
                        claim = s.run(*_claim_statement(plain, limit, owner, lease, plan))
                    probe = self._look_for_limited(s, queues, plan)
        accepted = settle() if settle is not None else []
        claimed = [job for result in limited
                   for job in claimed_jobs(result.all(), limited=True)]
        if claim is not None:
            claimed.extend(claimed_jobs(claim.all()))
        if probe and plan is not None:
            claimed.extend(self._after_look(probe, queues, limit - len(claimed), owner, lease,
                                            plan))
        claimed = start_order(claimed, plan)
        for job in claimed:
            if job.followers:
                self._followed.add(job.id)
        return accepted, claimed

    def _claim_limited_first(self, s: Session, queues: Sequence[str], free: int, owner: str,
                             lease: float, plan: ClaimPlan) -> tuple[list[Result], Result | None]:
        """While jobs wait under limits they are claimed first (their limits bound how many,
        and a steady flow of other jobs never starves them), then plain jobs fill the rest.
        Returns the claims under limits and the plain claim (results to read after)."""
        plain = [queue for queue in queues if queue not in plan.capped]
        limited, granted = self._claim_limited(s, queues, free, owner, lease, plan)
        free -= granted
        claim = (s.run(*_claim_statement(plain, free, owner, lease, plan))
                 if free > 0 and plain else None)
        return limited, claim

    def _look_for_limited(self, s: Session, queues: Sequence[str], plan: ClaimPlan
                          ) -> list[tuple[str, Result]]:
        """Whether any job waits under limits in `queues`: statements sent, not read."""
        looks: list[tuple[str, Result]] = []
        for queue in queues:
            if queue in plan.capped:
                looks.append(("capped", s.run("capped_queue", {"queue": queue})))
            if plan.limited:
                looks.append(("limited", s.run("limited_heads", {
                    "queue": queue, "after_task": "", "after_key": "", "groups": 1})))
        return looks

    def _after_look(self, looks: list[tuple[str, Result]], queues: Sequence[str], free: int,
                    owner: str, lease: float, plan: ClaimPlan) -> list[ClaimedJob]:
        """After a plain round: if jobs were seen waiting under limits, claim them from now
        on before others, and at once (in a transaction of their own) if slots are free."""
        found = any(row["head_id"] is not None if kind == "capped" else True
                    for kind, result in looks for row in result.all())
        if not found:
            self._limits_wake = None
            return []
        self._limits_busy = True
        if free <= 0:
            return []
        with self.db.transaction(worker=True, pipeline=True) as s:
            results, _ = self._claim_limited(s, queues, free, owner, lease, plan)
        return [job for result in results for job in claimed_jobs(result.all(), limited=True)]

    def _claim_limited(self, s: Session, queues: Sequence[str], free: int, owner: str,
                       lease: float, plan: ClaimPlan) -> tuple[list[Result], int]:
        """Claim what the limits allow of the limited jobs and capped queues among `queues`,
        up to `free`, in this transaction. Returns the claims' results (read them after the
        transaction) and how many jobs they were granted (at most that many claimed: a key
        can run short). What may start is decided again under the claim lock, from rows no
        other worker's claim can change meanwhile, so no two workers decide on the same
        running count or rate state; a round with nothing to start takes no lock."""
        groups, queue_room, now, reads = self._waiting(s, queues, plan, free)
        grants = allocate(groups, free, now, queue_room)
        if any(grants) and not self.db.serial_writes:  # (SQLite: its write lock is held)
            s.run("lock_limits")
            groups, queue_room, now, reads = self._waiting(s, queues, plan, free)
            grants = allocate(groups, free, now, queue_room)
        if not groups:
            self._limits_busy, self._limits_wake = False, None
            self._cycle_wake = math.inf
            return [], 0
        self._turn(groups, grants, reads)
        results: list[Result] = []
        keyed = [(g, n) for g, n in zip(groups, grants, strict=True) if n and g.task is not None]
        if keyed:
            results.append(s.batch("claim_limited", {
                "queue": [g.queue for g, _ in keyed], "task": [g.task for g, _ in keyed],
                "key": [g.key for g, _ in keyed], "limit": [n for _, n in keyed],
                "owner": [owner] * len(keyed), "lease": [lease] * len(keyed)}))
        for group, grant in zip(groups, grants, strict=True):
            if grant and group.task is None:  # a capped queue's jobs without limits
                results.append(s.run(*_claim_statement([group.queue], grant, owner, lease,
                                                       plan)))
        for group, grant in zip(groups, grants, strict=True):
            if grant and group.queue in plan.capped:  # whoever started goes second next time
                self._capped_first[group.queue] = group.task is not None
        wake = self._save_rates(s, list(zip(groups, grants, strict=True)),
                                results[0] if keyed else None, now)
        # Keys are read a few at a time: while more remain to read this cycle, a round that
        # could start nothing reads on soon; at the cycle's end, sleep until the earliest
        # start of any key read in it.
        cycle = min(self._cycle_wake, wake)
        if any(more for more, _ in reads.values()):
            self._cycle_wake = cycle
            if not any(grants):
                cycle = now + READ_ON
        else:
            self._cycle_wake = math.inf
            # (A start that came due while the cycle was read: the next cycle, soon.)
            cycle = max(cycle, now + READ_ON)
        self._limits_wake = time.time() + (cycle - now) if math.isfinite(cycle) else None
        return results, sum(grants)

    def _save_rates(self, s: Session, allocated: Sequence[tuple[Waiting, int]],
                    claimed: Result | None, now: float) -> float:
        """Write the GCRA state of each rate-limited key that started jobs, by how many it
        started (so the claim is read here, only when a rate is involved); returns when the
        next start of a key that still waits may be (the database's clock; inf: none)."""
        rated = [(g, n) for g, n in allocated if g.rate is not None]
        if not rated:
            return math.inf
        started: dict[tuple[str | None, str | None], int] = {}
        for row in claimed.all() if claimed is not None and any(n for _, n in rated) else ():
            group_key = (row["task"], row["limit_key"])
            started[group_key] = started.get(group_key, 0) + 1
        states: list[tuple[Waiting, float]] = []
        wake = math.inf
        for group, grant in rated:
            assert group.rate is not None
            count = started.get((group.task, group.key), 0)
            admitted = admit(group.rate, group.tat, now, count)
            if count:
                states.append((group, admitted.tat))
            if count == grant and admitted.next_at > now:
                wake = min(wake, admitted.next_at)  # (a key that ran out needs no wake-up)
        if states:
            s.batch("save_rate_state", {"task": [g.task for g, _ in states],
                                        "key": [g.key for g, _ in states],
                                        "tat": [tat for _, tat in states]})
        return wake

    def _turn(self, groups: Sequence[Waiting], grants: Sequence[int],
              reads: Mapping[str, tuple[bool, tuple[str, str]]]) -> None:
        """Where each queue's next read of keys starts: after the last key served this round
        (keys read but not served come first next time), or after all read when none could be
        served; from the first key again once the last was reached. `reads`: for each queue
        read, whether it may hold more keys, and the last key read."""
        for queue, (more, last_read) in reads.items():
            served = [(str(g.task), str(g.key)) for g, n in zip(groups, grants, strict=True)
                      if n and g.queue == queue and g.task is not None]
            last = served[-1] if served else last_read
            self._limit_cursor[queue] = last if more or last != last_read else _FIRST_KEY

    def _waiting(self, s: Session, queues: Sequence[str], plan: ClaimPlan, free: int
                 ) -> tuple[list[Waiting], dict[str, int], float,
                            dict[str, tuple[bool, tuple[str, str]]]]:
        """What waits under limits in `queues`: the groups (each queue's keys in key order,
        from where its last round left off; in a capped queue, its jobs without limits take
        turns with them at going first), the room left in each capped queue, the database's
        time, and for each queue whose keys were read whether it may hold more, and the last
        key read. A task's key is one group, in the first of `queues` that holds it: its
        limits are counted once."""
        groups: list[Waiting] = []
        queue_room: dict[str, int] = {}
        reads: dict[str, tuple[bool, tuple[str, str]]] = {}
        seen: set[tuple[str, str]] = set()
        now = 0.0
        wanted = min(LIMIT_GROUPS, free + 1)
        for queue in queues:
            plain: Waiting | None = None
            if queue in plan.capped:
                row = s.run("capped_queue", {"queue": queue}).one()
                if row is not None:
                    # (A limit removed, or damaged, since the worker read the settings: the
                    # queue's jobs are claimed here all the same, without it.)
                    now = float(row["now"])
                    cap = stored_concurrency(row["concurrency"])
                    if cap is not None:
                        queue_room[queue] = max(0, cap - safe_int(row["running"], 0))
                    if row["head_id"] is not None:
                        plain = Waiting(queue, None, None)
            keys: list[Waiting] = []
            if plan.limited:
                # One key more than used: whether more remain to read is then exact.
                after = self._limit_cursor.get(queue, _FIRST_KEY)
                rows = s.run("limited_heads", {"queue": queue, "after_task": after[0],
                                               "after_key": after[1],
                                               "groups": wanted + 1}).all()
                if not rows and after != _FIRST_KEY:  # keys gone since: from the first
                    self._cycle_wake = math.inf
                    rows = s.run("limited_heads", {"queue": queue, "after_task": "",
                                                   "after_key": "",
                                                   "groups": wanted + 1}).all()
                more, rows = len(rows) > wanted, rows[:wanted]
                if rows:
                    reads[queue] = (more, (str(rows[-1]["task"]), str(rows[-1]["limit_key"])))
                for row in rows:
                    now = float(row["now"])
                    group = _limited_group(queue, row)
                    group_key = (str(group.task), str(group.key))
                    # A key goes to the first queue with room that holds it (a full capped
                    # queue must not hold back the key's jobs in another queue).
                    if group_key not in seen and queue_room.get(queue, 1) > 0:
                        seen.add(group_key)
                        keys.append(group)
            if plain is not None and self._capped_first.get(queue, True):
                groups.append(plain)
                plain = None
            groups.extend(keys)
            if plain is not None:
                groups.append(plain)
        return groups, queue_room, now, reads

    def set_queue(self, name: str, *, paused: bool | None = None, lifo: bool | None = None,
                  concurrency: int | None = None) -> None:
        with self.db.transaction() as s:
            s.run("set_queue", {"name": name, "paused": paused, "lifo": lifo,
                                "set_concurrency": concurrency is not None,
                                "concurrency": concurrency or None})
            if paused is False:  # waiting workers claim from it at once
                s.notify(name)

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        return self.ack_and_claim(outcomes, worker, (), 0, 0.0)[0]

    def save_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        self.ack_and_claim((), "", (), 0, 0.0, updates)

    def _ack_in(
        self, s: Session, outcomes: Sequence[Outcome], worker: str
    ) -> Callable[[], list[bool]]:
        """Send the acks; returns how to read which were accepted once the transaction is
        through. An attempt that did not succeed is recorded when its ack matched."""
        followed = self._followed
        linked: list[Succeeded] = []
        if followed:  # (a worker that never claimed a job with followers skips all this)
            linked = [o for o in outcomes if type(o) is Succeeded and o.job_id in followed]
            followed.difference_update(o.job_id for o in outcomes)
        successes = [o for o in outcomes if type(o) is Succeeded]
        if linked:
            tied = {o.job_id for o in linked}
            successes = [o for o in successes if o.job_id not in tied]
        done = s.batch("ack_succeeded", {
            "id": [o.job_id for o in successes], "token": [o.token for o in successes],
            "result": [o.result_json for o in successes]}) if successes else None
        others = [outcome for outcome in outcomes if type(outcome) is not Succeeded]
        written = self._write_endings(s, others, worker) if others else []
        ended: list[int] = []
        known: dict[int, Row] = {}
        if linked:
            known = self._write_followed(s, linked)
            ended.extend(sorted(known))
        matched: set[int] = set()
        for result in written:
            # (Not successes: rarer, read now.) A retry, snooze or failure may end the job:
            # failed, or cancelled when a cancel was requested while it ran.
            for row in result.all():
                matched.add(row["id"])
                if row["followers"] and row["state"] in dependents.ENDED:
                    ended.append(row["id"])
        if ended:
            self._release(s, ended, known)
        accepted_followed = set(known)

        def settle() -> list[bool]:
            accepted = {row["id"] for row in done.all()} if done is not None else set()
            accepted |= accepted_followed
            late = [o for o in successes if o.job_id not in accepted]
            if late:  # lost leases, or jobs that gained followers since their claim
                try:
                    accepted |= self._ack_followed(late)
                except Exception:  # (the round's own transaction is committed: keep it)
                    self.db.log.exception(
                        "could not record the end of jobs %s, which gained dependents while "
                        "they ran; they will be rescued and run again",
                        ", ".join(str(o.job_id) for o in late))
            return [o.job_id in matched if type(o) is not Succeeded else o.job_id in accepted
                    for o in outcomes]

        return settle

    def _ack_followed(self, outcomes: Sequence[Succeeded]) -> set[int]:
        """Ack successes with their followers released (in one transaction); returns the
        ids accepted (a lost lease is not)."""
        with self.db.transaction(worker=True) as s:
            accepted = self._write_followed(s, outcomes)
            if accepted:
                self._release(s, sorted(accepted), accepted)
        return set(accepted)

    def _write_followed(self, s: Session, outcomes: Sequence[Succeeded]) -> dict[int, Row]:
        """Write the successes of jobs with followers (one statement); returns the rows
        accepted (id, state, result, error, callbacks), read at once: their followers are
        released next, from these rows."""
        rows = s.batch("ack_followed", {"id": [o.job_id for o in outcomes],
                                        "token": [o.token for o in outcomes],
                                        "result": [o.result_json for o in outcomes]}).all()
        return {int(row["id"]): row for row in rows}

    def _release(self, s: Session, ended: Sequence[int],
                 known: Mapping[int, Row] | None = None) -> None:
        """What waited for the jobs `ended` (ended in this transaction) goes on; `known`:
        the ended rows already read."""
        for queue in sorted(dependents.release(s, ended, self._enqueue_callback, known)):
            s.notify(queue)

    def _enqueue_callback(self, s: Session, parent: int, stored: Mapping[str, Any],
                          first: str) -> None:
        """A parent's callback, with `first` (JSON text of its leading arguments: the
        parent's result, or its id and error) before its own, unless it is immutable."""
        args = str(stored.get("args", "[]"))
        if not stored.get("immutable"):
            args = "[" + first + ("" if args == "[]" else ", " + args[1:-1]) + "]"
        job = NewJob(str(stored["task"]), str(stored["queue"]), args,
                     str(stored.get("kwargs", "{}")), int(stored.get("priority", 0)),
                     int(stored.get("max_attempts", 3)), backoff=stored.get("backoff"),
                     timeout=stored.get("timeout"), soft_timeout=stored.get("soft_timeout"),
                     limit_key=stored.get("limit_key"))
        record = self._enqueue_linked(s, job, (), done_parents=(parent,)).record
        s.notify(record.queue)

    def _write_endings(self, s: Session, outcomes: Sequence[Outcome], worker: str, *,
                       kind: str | None = None, keep_run_at: bool = False) -> list[Result]:
        """Write attempts that did not succeed (retry, snoozed, failed, cancelled), fenced by
        their lease tokens, one statement per kind; then record, in one more, those whose
        write matched (decided in SQL, so a pipeline need not wait for the acks' replies).
        A retry is placed by the database's clock (its delay), or, with `keep_run_at`, at
        exactly its run_at; a snooze by the database's clock. `kind`: what the attempts
        table says instead of each outcome's own kind. Returns the kinds' results: a row
        (id, state, followers) for each write that matched."""
        kinds: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            statement = _ACK_STATEMENTS.get(type(outcome))
            if statement is None:  # pragma: no cover
                raise TypeError(f"unknown outcome {outcome!r}")
            kinds.setdefault(statement, []).append(outcome)
        results = [s.batch(statement, _ending_columns(group, keep_run_at))
                   for statement, group in kinds.items()]
        notes = [o.note if isinstance(o, Snoozed) else getattr(o, "error", None)
                 for o in outcomes]
        s.batch("record_attempts", {
            "job_id": [o.job_id for o in outcomes], "attempt": [o.attempt for o in outcomes],
            "worker": [worker] * len(outcomes),
            "started_at": [float(o.started_at) for o in outcomes],
            "finished_at": [float(o.finished_at) for o in outcomes],
            "outcome": [kind or o.kind for o in outcomes],
            "error_type": [e.type if e else None for e in notes],
            "error_message": [e.message if e else None for e in notes],
            "traceback": [e.traceback if e else None for e in notes],
            "token": [o.token for o in outcomes]})
        return results

    def release(self, leases: Sequence[Lease], *, not_before: float = 0.0) -> int:
        if not leases:
            return 0
        delay = max(0.0, not_before - time.time()) if not_before else 0.0
        released = 0
        for held in leases:
            self._followed.discard(held.job_id)
        with self.db.transaction(worker=True) as s:
            ended: list[int] = []
            for held in leases:
                row = s.run("release", {"id": held.job_id, "token": held.token,
                                        "delay": delay}).one()
                if row is None:
                    continue
                released += 1
                if row["followers"] and row["state"] in dependents.ENDED:  # (cancelled)
                    ended.append(held.job_id)
            if ended:
                self._release(s, ended)
            if released:
                s.notify()
        return released

    def next_due(self, queues: Sequence[str] | None = None) -> float | None:
        """When the next scheduled job is due, or a rate-limited job this process saw may
        start, whichever comes first (by this host's clock)."""
        if queues is None:
            rows = self.db.read("next_due", worker=True)
        else:
            rows = self.db.read("next_due_on_queues", {"queues": list(queues)}, worker=True)
        wait = rows[0]["wait"] if rows else None
        due = None if wait is None else time.time() + float(wait)
        limited = self._limits_wake
        if limited is not None and (due is None or limited < due):
            # Even when already past (a caller that asks late, on a loaded machine): every
            # claim replaces it, so it is still owed, never one already acted on.
            return limited
        return due

    def cancels_requested(self, job_ids: Sequence[int]) -> set[int]:
        rows = self.db.read("cancels_requested", {"ids": list(job_ids)}, worker=True)
        return {row["id"] for row in rows}

    # -- workers -----------------------------------------------------------------------

    def register_worker(self, worker: WorkerInfo, *, takeover_after: float = math.inf,
                        gone: WorkerRecord | None = None) -> WorkerRecord | None:
        with self.db.transaction(worker=True) as s:
            params = _worker_params(worker, takeover_after, gone)
            if s.run("register_worker", params).one() is not None:
                return None
            row = s.run("get_worker", {"name": worker.name}).one()
        assert row is not None  # the insert clashed with it, in this transaction
        return worker_record(row)

    def register_tasks(self, worker: str, tasks: Sequence[TaskInfo]) -> None:
        if not tasks:
            return
        # In name order: workers starting together lock the rows in one order, never deadlock.
        with self.db.transaction(worker=True) as s:
            for t in sorted(tasks, key=lambda t: t.name):
                before = s.run("task_limited", {"name": t.name}).one()
                rate = t.rate
                s.run("register_task", {
                    "name": t.name, "queue": t.queue, "priority": t.priority,
                    "max_attempts": t.max_attempts, "worker": worker,
                    "rate_count": rate.count if rate else None,
                    "rate_per": rate.per if rate else None,
                    "rate_burst": rate.burst if rate else None,
                    "concurrency": t.concurrency, "keyed": t.keyed})
                if before is None or bool(before["limited"]) != t.limited:
                    # Its jobs move to the claim that now fits them (a first
                    # registration too: a job enqueued by name with a key, before any worker
                    # knew the task, would otherwise wait where no claim looks).
                    s.run("relimit_jobs", {"task": t.name, "limited": t.limited})

    def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease: float, busy: int
    ) -> HeartbeatReply:
        cancel: set[int] = set()
        lost: set[int] = set()
        with self.db.transaction(worker=True, renewal=True) as s:
            if leases:
                held = {"ids": [h.job_id for h in leases], "tokens": [h.token for h in leases]}
                rows = s.run("extend_leases", {**held, "lease": lease}).all()
                extended = {row["id"] for row in rows}
                cancel = {row["id"] for row in rows if row["cancel_requested"]}
                if len(extended) < len(leases):
                    finished = {row["id"] for row in s.run("finished_leases", held).all()}
                    lost = {h.job_id for h in leases} - extended - finished
            row = s.run("worker_heartbeat", {"name": worker.name, "busy": busy}).one()
            if row is None:  # our row was removed as dead: come back
                s.run("register_worker", _worker_params(worker, math.inf, None))
                stop = False
            else:
                stop = bool(row["stop_requested"])
        return HeartbeatReply(frozenset(cancel), frozenset(lost), stop)

    def deregister_worker(self, name: str) -> None:
        with self.db.transaction(worker=True) as s:
            s.run("deregister_worker", {"name": name})

    def forget_dead_workers(self, older_than: float) -> int:
        with self.db.transaction(worker=True) as s:
            return s.run("forget_dead_workers", {"older_than": older_than}).count

    # -- maintenance -------------------------------------------------------------------

    def observe_leases(self) -> list[ObservedLease]:
        with self.db.transaction(worker=True) as s:
            s.run("lock_as_writer")  # seen only when they could be written
            rows = s.run("observe_leases").all()
        return [ObservedLease(row["id"], row["lease_token"], row["lease_expires_at"])
                for row in rows]

    def rescue(self, leases: Sequence[ObservedLease]) -> RescueReport:
        """A lost attempt ends as the policy decides for every pool (policy.Cause.LOST) and is
        written as a worker's outcome would be; then the lease token is forgotten, so the
        worker that lost the job, should it still run, learns from its next heartbeat that
        the lease is gone (not that its job finished)."""
        if not leases:
            return RescueReport()
        ended: list[Outcome] = []
        with self.db.transaction(worker=True) as s:
            s.run("lock_as_writer")
            for seen in leases:
                row = s.run("find_observed", {"id": seen.job_id, "token": seen.token,
                                              "beat": seen.beat}).one()
                if row is None:  # renewed, finished, taken or being written since
                    continue
                owner = row["lease_owner"] or "unknown"
                facts = AttemptFacts(
                    row["id"], seen.token, row["attempts"], row["max_attempts"],
                    row["started_at"] or row["now"], backoff=0.0,
                    cancel_requested=bool(row["cancel_requested"]), run_at=row["run_at"])
                outcome = decide(facts, Cause.LOST, lost_by(owner), now=row["now"])
                (ended_here,) = self._write_endings(s, [outcome], owner, kind="lost",
                                                    keep_run_at=True)
                written = ended_here.one()
                if written is not None:
                    s.run("forget_lease", {"id": row["id"]})
                    ended.append(outcome)
                    if written["followers"] and written["state"] in dependents.ENDED:
                        self._release(s, [outcome.job_id])
            report = RescueReport(
                requeued=tuple(o.job_id for o in ended if isinstance(o, Retry)),
                failed=tuple(o.job_id for o in ended if isinstance(o, Failed)),
                cancelled=tuple(o.job_id for o in ended if isinstance(o, Cancelled)))
            if report.requeued:
                s.notify()
        return report

    def prune(self, ages: Mapping[JobState, float], *, limit: int = 500,
              dry_run: bool = False) -> int:
        """One transaction of at most `limit` deletions (the caller loops), state by state."""
        for state in ages:
            if state not in TERMINAL_STATES:
                raise InvalidInput(f"{state} jobs are never pruned, only finished ones")
        if dry_run:
            return sum(int(self.db.read("prune_finished_count", {
                "state": str(state), "age": age})[0]["n"]) for state, age in ages.items())
        deleted = 0
        with self.db.transaction() as s:
            s.run("raise_id_floor")
            for state, age in ages.items():
                if deleted >= limit:
                    break
                deleted += s.run("prune_finished", {"state": str(state), "age": age,
                                                    "limit": limit - deleted}).count
            if deleted:
                s.run("prune_workflows", {"limit": limit})
        return deleted

    def prune_schedule_slots(self, older_than: float, *, limit: int = 500) -> int:
        with self.db.transaction() as s:
            return s.run("prune_schedule_slots", {"older_than": older_than,
                                                  "limit": limit}).count

    def prune_rate_state(self, *, limit: int = 500) -> int:
        with self.db.transaction() as s:
            return s.run("prune_rate_state", {"limit": limit}).count

    def shrink_log(self) -> bool:
        return self.db.maintain()

    # -- schedules ---------------------------------------------------------------------

    def sync_schedules(self, worker: str, definitions: Sequence[ScheduleDefinition]
                       ) -> list[str]:
        # In name order: schedulers starting together lock the rows in one order.
        with self.db.transaction(worker=True) as s:
            for d in sorted(definitions, key=lambda d: d.name):
                s.run("sync_schedule", {
                    "name": d.name, "task": d.task, "cron": d.cron, "every": d.every,
                    "tz": d.tz, "args": d.args_json, "kwargs": d.kwargs_json,
                    "catch_up": d.catch_up, "max_lateness": d.max_lateness, "worker": worker})
            gone = s.run("deactivate_schedules", {
                "names": [d.name for d in definitions], "worker": worker}).all()
        return sorted(str(row["name"]) for row in gone)

    def schedule_states(self) -> tuple[float, list[ScheduleState]]:
        rows = self.db.read("schedule_states", worker=True)
        if not rows:
            return time.time(), []
        return float(rows[0]["now"]), [schedule_state(row) for row in rows]

    def fire(self, runs: Sequence[SlotRun]) -> list[FiredSlot]:
        """Each run's slot row and its job in one transaction: a slot another scheduler took
        first is left out (nothing enqueued for it)."""
        fired: list[FiredSlot] = []
        if not runs:
            return fired
        with self.db.transaction(worker=True) as s:
            for run in runs:
                where = {"schedule": run.schedule, "slot": run.slot}
                if run.slot is not None and s.run("take_slot", where).one() is None:
                    continue
                record = self._enqueue_one(s, run.job).record
                s.run("tag_scheduled_job", {**where, "id": record.id})
                if run.slot is not None:
                    s.run("link_slot_job", {**where, "job_id": record.id})
                fired.append(FiredSlot(run.schedule, run.slot,
                                       replace(record, schedule=run.schedule,
                                               schedule_slot=run.slot)))
            for queue in sorted({f.job.queue for f in fired}):
                s.notify(queue)
        return fired

    def pause_schedule(self, name: str, paused: bool) -> bool:
        with self.db.transaction() as s:
            return s.run("pause_schedule", {"name": name, "paused": paused}).one() is not None

    # -- leaders of singleton duties ----------------------------------------------------

    def take_leadership(self, duty: str, owner: str, ttl: float) -> bool:
        with self.db.transaction(worker=True) as s:
            return s.run("take_leadership", {"duty": duty, "owner": owner,
                                             "ttl": ttl}).one() is not None

    def resign_leadership(self, duty: str, owner: str) -> None:
        with self.db.transaction(worker=True) as s:
            s.run("resign_leadership", {"duty": duty, "owner": owner})

    # -- administration ----------------------------------------------------------------

    def cancel(self, job_id: int) -> JobState | None:
        with self.db.transaction() as s:
            cancelled = s.run("cancel_waiting", {"id": job_id}).one()
            if cancelled is not None:
                if cancelled["followers"]:
                    self._release(s, [job_id])
                return JobState.CANCELLED
            if s.run("cancel_running", {"id": job_id}).count:
                return JobState.RUNNING
            row = s.run("get_state", {"id": job_id}).one()
        return None if row is None else JobState(row["state"])

    def cancel_workflow(self, workflow_id: int) -> bool:
        with self.db.transaction() as s:
            if s.run("get_workflow", {"id": workflow_id}).one() is None:
                return False
            # Its members locked in id order first, parents before children, as an ack
            # locks a member then its children: the two never deadlock.
            s.run("lock_workflow", {"id": workflow_id})
            cancelled = s.run("cancel_workflow_waiting", {"id": workflow_id}).all()
            s.run("cancel_workflow_running", {"id": workflow_id})
            followed = [int(row["id"]) for row in cancelled if row["followers"]]
            if followed:
                self._release(s, followed)
        return True

    def retry(self, job_ids: Sequence[int]) -> RetryReport:
        retried: list[int] = []
        held: dict[int, JobRecord] = {}
        with self.db.transaction() as s:
            for job_id in job_ids:
                for _ in range(UNIQUE_RACE_RETRIES):
                    try:
                        with s.guarded():  # a clash undoes this job's statement only
                            row = s.run("retry_job", {"id": job_id}).one()
                    except KeyClash:
                        job = s.run("get_job", {"id": job_id}).one()
                        holder = s.run("find_active_by_unique_key", {
                            "unique_key": job["unique_key"] if job else None}).one()
                        if holder is not None:
                            held[job_id] = job_record(holder)
                            break
                        continue
                    if row is not None:
                        retried.append(job_id)
                        dependents.resume(s, [job_id])
                        dependents.requeue_dependent(s, job_id)
                    break
                else:
                    raise RuntimeError(f"retry of job {job_id}: its unique key kept changing "
                                       "hands; retry it again")
            if retried:
                s.notify()
        return RetryReport(tuple(retried), held)

    def delete(self, job_ids: Sequence[int]) -> list[int]:
        deleted: list[int] = []
        with self.db.transaction() as s:
            s.run("raise_id_floor")
            for job_id in job_ids:
                # What waits for a job that will never end is released as if it was
                # cancelled (so nothing waits forever).
                cancelled = s.run("cancel_waiting", {"id": job_id}).one()
                if cancelled is not None and cancelled["followers"]:
                    self._release(s, [job_id])
                if s.run("delete_job", {"id": job_id}).count:
                    deleted.append(job_id)
        return deleted

    def purge(self, queue: str, state: JobState | None, *, dry_run: bool = False) -> int:
        params = {"queue": queue, "state": None if state is None else str(state)}
        if dry_run:
            return int(self.db.read("purge_count", params)[0]["n"])
        with self.db.transaction() as s:
            s.run("raise_id_floor")
            followed = [int(row["id"]) for row in s.run("followed_in_queue", params).all()]
            for job_id in followed:  # (as delete: what waits for them goes on)
                s.run("cancel_waiting", {"id": job_id})
            if followed:
                self._release(s, followed)
            return s.run("purge", params).count

    def request_worker_stop(self, name: str | None) -> int:
        with self.db.transaction() as s:
            return s.run("request_worker_stop", {"name": name}).count
