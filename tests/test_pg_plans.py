"""PostgreSQL's plans for the statements that name running jobs by id (a round's acks, lease
renewals, progress and cancel checks; one job's hand-back, cancel or rescue): none reads the
index of running jobs, whatever the statistics say of them. After an ANALYZE that saw no job
running, the planner used to read that index (every running job of every worker: for each
element of a round in a prepared statement's plan) where the primary key finds each job: see
sql/postgresql/ack_succeeded.sql.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conveyor import Conveyor
from conveyor.backends.postgres import _q

ROUND = 96  # a round's jobs, as the worker sends them

# Statements of a round's jobs (arrays), and of one job (or one workflow's) by its id.
ROUND_STATEMENTS = ("ack_succeeded", "ack_followed", "ack_failed", "ack_cancelled",
                    "ack_retry", "ack_snooze", "extend_leases", "save_progress",
                    "cancels_requested")
ONE_JOB_STATEMENTS = ("release", "cancel_running", "find_observed", "cancel_workflow_running",
                      "retry_job", "child_rewaits")
STATE_INDEXES = ("conveyor_jobs_running", "conveyor_jobs_finished")

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


def _custom_plan(conn: psycopg.Connection[Any], query: str, params: dict[str, object]) -> str:
    """The plan made for these values."""
    return "\n".join(str(row[0]) for row in conn.execute("EXPLAIN " + query, params))


def _generic_plan(conn: psycopg.Connection[Any], query: str, params: dict[str, object]) -> str:
    """The plan a prepared statement keeps for any values (what psycopg's prepared statements
    run once PostgreSQL prefers it)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    numbered = re.sub(r"%\((\w+)\)s", number, query).replace("%%", "%")
    values = sql.SQL(", ").join(sql.Literal(params[name]) for name in names)
    conn.execute(f"PREPARE probe AS {numbered}".encode(), prepare=False)
    conn.execute("SET plan_cache_mode = force_generic_plan", prepare=False)
    try:
        rows = conn.execute(sql.SQL("EXPLAIN EXECUTE probe({})").format(values),
                            prepare=False).fetchall()
    finally:
        conn.execute("RESET plan_cache_mode", prepare=False)
        conn.execute("DEALLOCATE probe", prepare=False)
    return "\n".join(str(row[0]) for row in rows)


@pytest.mark.backends("postgresql")
def test_statements_by_id_never_read_an_index_of_states(db_url: str) -> None:
    with Conveyor(db_url) as app:
        noop = app.task(name="t.noop")(lambda: None)
        # Enough rows that reading the table whole costs more than the primary key.
        ids = [job.id for job in app.enqueue_many(noop.prepare() for _ in range(30_000))]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ANALYZE conveyor_jobs")  # 30,000 queued, none running or finished
        for name in ROUND_STATEMENTS + ONE_JOB_STATEMENTS:
            query = _q(name)
            params = _params(query, ids[:ROUND])
            for kind, plan in (("custom", _custom_plan(conn, query, params)),
                               ("generic", _generic_plan(conn, query, params))):
                where = f"{name}, {kind} plan:\n{plan}"
                assert not [index for index in STATE_INDEXES if index in plan], where
                by_id = "conveyor_jobs_workflow" if "workflow" in name else "conveyor_jobs_pkey"
                assert by_id in plan, where
