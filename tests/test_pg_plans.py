"""PostgreSQL's plans for the statements that name running jobs by id (a round's acks, lease
renewals, progress and cancel checks; one job's hand-back, cancel or rescue): none reads the
index of running jobs, whatever the statistics say of them. After an ANALYZE that saw no job
running, the planner used to read that index (every running job of every worker: for each
element of a round in a prepared statement's plan) where the primary key finds each job: see
sql/postgresql/ack_succeeded.sql.
"""

from __future__ import annotations

import re

import psycopg
import pytest

from conveyor import Conveyor
from conveyor.backends.postgres import _q

ROUND = 96  # a round's jobs, as the worker sends them

# Statements of a round's jobs (arrays), and of one job (or one workflow's) by its id.
ROUND_STATEMENTS = ("ack_succeeded", "ack_followed", "ack_failed", "ack_cancelled",
                    "ack_retry", "ack_snooze", "extend_leases", "save_progress",
                    "cancels_requested")
ONE_JOB_STATEMENTS = ("release", "cancel_running", "find_observed", "cancel_workflow_running")

_ARRAY = re.compile(r"%\((\w+)\)s::(bigint|text|double precision)\[\]")
_SAMPLE = {"bigint": 1, "text": "null", "double precision": 1.0}


def _params(query: str, ids: list[int]) -> dict[str, object]:
    """Parameters for `query`: each array as long as `ids` (a round's jobs), an id the first
    of them, any other value a number."""
    params: dict[str, object] = {name: [_SAMPLE[kind]] * len(ids)
                                 for name, kind in _ARRAY.findall(query)}
    for name in ("id", "ids"):
        if name in params:
            params[name] = ids
    for name in set(re.findall(r"%\((\w+)\)s", query)) - params.keys():
        params[name] = ids[0] if name == "id" else 1  # (a lease, a token, a delay...)
    return params


@pytest.mark.backends("postgresql")
def test_statements_by_id_never_read_the_running_jobs_index(db_url: str) -> None:
    with Conveyor(db_url) as app:
        noop = app.task(name="t.noop")(lambda: None)
        # Enough rows that reading the table whole costs more than the primary key.
        ids = [job.id for job in app.enqueue_many(noop.prepare() for _ in range(30_000))]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ANALYZE conveyor_jobs")  # 30,000 queued, none running
        for name in ROUND_STATEMENTS + ONE_JOB_STATEMENTS:
            query = _q(name)
            plan = "\n".join(str(row[0]) for row in conn.execute(
                "EXPLAIN " + query, _params(query, ids[:ROUND])).fetchall())
            assert "conveyor_jobs_running" not in plan, f"{name}:\n{plan}"
            by_id = "conveyor_jobs_workflow" if "workflow" in name else "conveyor_jobs_pkey"
            assert by_id in plan, f"{name}:\n{plan}"
