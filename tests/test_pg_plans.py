"""PostgreSQL's plans for the statements that take a round's jobs as arrays (acks, lease
renewals, progress, cancel checks): none reads the index of running jobs, whatever the
statistics say of them. After an ANALYZE that saw no job running, the planner used to read
that index (every running job of every worker, for each element of the arrays in a prepared
statement's plan) where the primary key finds each job: see sql/postgresql/ack_succeeded.sql.
"""

from __future__ import annotations

import re

import psycopg
import pytest

from conveyor import Conveyor
from conveyor.backends.postgres import _q

ROUND = 96  # a round's jobs, as the worker sends them

STATEMENTS = ("ack_succeeded", "ack_followed", "ack_failed", "ack_cancelled", "ack_retry",
              "ack_snooze", "extend_leases", "save_progress", "cancels_requested")

_ARRAY = re.compile(r"%\((\w+)\)s::(bigint|text|double precision)\[\]")
_SAMPLE = {"bigint": 1, "text": "null", "double precision": 1.0}


def _params(query: str, ids: list[int]) -> dict[str, object]:
    """A round of `ids` for `query`: each array as long as the round, the lease a number."""
    params: dict[str, object] = {name: [_SAMPLE[kind]] * len(ids)
                                 for name, kind in _ARRAY.findall(query)}
    for name in ("id", "ids"):
        if name in params:
            params[name] = ids
    for name in set(re.findall(r"%\((\w+)\)s", query)) - params.keys():
        params[name] = 30.0  # (extend_leases' lease)
    return params


@pytest.mark.backends("postgresql")
def test_round_statements_never_read_the_running_jobs_index(db_url: str) -> None:
    with Conveyor(db_url) as app:
        noop = app.task(name="t.noop")(lambda: None)
        # Enough rows that reading the table whole costs more than the primary key.
        ids = [job.id for job in app.enqueue_many(noop.prepare() for _ in range(30_000))]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ANALYZE conveyor_jobs")  # 30,000 queued, none running
        for name in STATEMENTS:
            query = _q(name)
            plan = "\n".join(str(row[0]) for row in conn.execute(
                "EXPLAIN " + query, _params(query, ids[:ROUND])).fetchall())
            assert "conveyor_jobs_running" not in plan, f"{name}:\n{plan}"
            assert "conveyor_jobs_pkey" in plan, f"{name}:\n{plan}"
