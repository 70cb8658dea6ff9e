"""Jobs that wait for other jobs, inside the store's transactions.

A parent's end releases its children in the transaction that records the end: each edge is
counted once (`conveyor_edges.done`), a child whose parents all ended runs with their results
fed into its first argument, and a child whose parent failed is cancelled or runs, as its
policy says (a cancelled child releases its own children in turn). The parent's callbacks
are enqueued in the same transaction. An admin retry of a parent undoes what its failure did.

A fed job is stored with `null` as its first argument until its parents end; its feed names
the jobs whose results replace it: a job id, or a (nested) JSON array of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..job import TERMINAL_STATES, JobError
from .dialect import Row, Session
from .rows import decode_error, encode_error

# The error of a job cancelled because a job it waited for failed or was cancelled; an admin
# retry of that parent brings such a job back to waiting.
DEPENDENCY_FAILED = "DependencyFailed"
ENDED = frozenset(str(state) for state in TERMINAL_STATES)
POLICIES = ("cancel", "run")

# Enqueues a parent's callback: (session, parent id, the callback's stored form, its args).
CallbackSink = Callable[[Session, int, Mapping[str, Any], str], None]


def feed_ids(feed: Any) -> list[int]:
    """The job ids a decoded feed names."""
    if isinstance(feed, int):
        return [feed]
    if isinstance(feed, list):
        return [job_id for item in feed for job_id in feed_ids(item)]
    return []


def fed_value(feed: Any, ended: Mapping[int, Row]) -> str:
    """The JSON text of what `feed` stands for: a succeeded job's result as stored (never
    decoded), a failed or cancelled one's `{"job", "state", "error"}`."""
    if isinstance(feed, list):
        parts: list[str] = []
        for item in feed:  # (a chord's 10,000 members: no call per succeeded one)
            row = None if isinstance(item, list) else ended.get(item)
            if row is not None and row["state"] == "succeeded" and row["result"] is not None:
                parts.append(row["result"])
            else:
                parts.append(fed_value(item, ended))
        return "[" + ", ".join(parts) + "]"
    row = ended.get(int(feed))
    if row is None:  # (deleted by hand since it ended: its result is gone)
        return json.dumps({"job": int(feed), "state": "deleted", "error": {
            "type": "JobNotFound", "message": f"job {feed} was deleted before its result "
                                              "was passed on"}})
    if row["state"] == "succeeded":
        return str(row["result"]) if row["result"] is not None else "null"
    error = decode_error(row["error"])
    return json.dumps({"job": int(feed), "state": row["state"], "error": {
        "type": error.type if error else "Cancelled",
        "message": error.message if error else ""}})


def fed_arguments(args_json: str, value_json: str) -> str:
    """`args_json` with its first argument (the `null` stored until now) replaced."""
    if args_json.startswith("[null"):
        rest = args_json[len("[null"):]
        return "[" + value_json + rest
    # (A row edited by hand: decode it.)
    args = json.loads(args_json)
    if not isinstance(args, list):
        args = []
    args[:1] = [json.loads(value_json)]
    return json.dumps(args)


def results_of(s: Session, ids: Sequence[int], known: dict[int, Row]) -> dict[int, Row]:
    """The ended rows of `ids`, reading those not in `known` (which it extends)."""
    missing = sorted({job_id for job_id in ids if job_id not in known})
    if missing:
        known.update({row["id"]: row for row in s.run("jobs_ended", {"ids": missing}).all()})
    return known


def release(s: Session, ended: Sequence[int], callback: CallbackSink,
            known: Mapping[int, Row] | None = None) -> set[str]:
    """Release what waits for the jobs `ended` (each in a final state, changed in this
    transaction; `known`: rows of them already read, as jobs_ended gives them). Returns the
    queues that got runnable jobs."""
    queues: set[str] = set()
    frontier = sorted(set(ended))
    rows: dict[int, Row] = dict(known) if known else {}
    while frontier:
        results_of(s, frontier, rows)
        for parent in frontier:
            row = rows.get(parent)
            if row is not None and row["callbacks"]:
                _callbacks(s, parent, row, callback)
        edges = s.run("release_edges", {"ids": frontier}).all()
        from_parents: dict[int, list[int]] = {}
        for edge in edges:
            from_parents.setdefault(int(edge["child"]), []).append(int(edge["parent"]))
        frontier = []
        if not from_parents:
            break
        for child in s.run("children", {"ids": sorted(from_parents)}).all():
            if child["state"] != "waiting":
                continue
            parents = sorted(from_parents[child["id"]])
            bad = [p for p in parents if rows[p]["state"] != "succeeded"]
            if bad and child["on_parent_failure"] != "run":
                blocked = s.run("child_blocked", {
                    "id": child["id"], "error": dependency_error(bad[0], rows[bad[0]]["state"]),
                }).one()
                if blocked is not None:
                    rows.pop(child["id"], None)  # (read again as cancelled)
                    if blocked["followers"]:
                        frontier.append(int(child["id"]))
                continue
            pending = int(child["pending_parents"]) - len(parents)
            if pending > 0:
                s.run("child_waits", {"id": child["id"], "pending": pending})
                continue
            args = str(child["args"])
            if child["feed"] is not None:
                feed = json.loads(child["feed"])
                if isinstance(feed, list) and s.run("child_fed", {"id": child["id"]}).one():
                    queues.add(str(child["queue"]))  # (fed on the server)
                    continue
                value = fed_value(feed, results_of(s, feed_ids(feed), rows))
                args = fed_arguments(args, value)
            if s.run("child_ready", {"id": child["id"], "args": args}).one() is not None:
                queues.add(str(child["queue"]))
        frontier.sort()
    return queues


def dependency_error(parent: int, state: str) -> str | None:
    what = "failed" if state == "failed" else "was cancelled"
    return encode_error(JobError(DEPENDENCY_FAILED, f"dependency {parent} {what}"))


def _callbacks(s: Session, parent: int, row: Row, callback: CallbackSink) -> None:
    try:
        stored = json.loads(row["callbacks"])
    except (ValueError, TypeError, RecursionError):
        return  # (a damaged row: no callback can be read)
    if not isinstance(stored, dict):
        return
    if row["state"] == "succeeded" and isinstance(stored.get("on_success"), dict):
        result = str(row["result"]) if row["result"] is not None else "null"
        callback(s, parent, stored["on_success"], result)
    elif row["state"] == "failed" and isinstance(stored.get("on_failure"), dict):
        error = decode_error(row["error"])
        detail = {"type": error.type if error else "Error",
                  "message": error.message if error else ""}
        callback(s, parent, stored["on_failure"], json.dumps([parent, detail])[1:-1])


def resume(s: Session, retried: Sequence[int]) -> None:
    """Jobs `retried` (failed or cancelled, queued again by an admin retry) run again: each
    edge from them counts again, and a child their failure cancelled waits again (and so do
    its own children it cancelled in turn), unless another parent of it also failed."""
    frontier = list(retried)
    while frontier:
        parent = frontier.pop()
        for edge in s.run("child_edges", {"id": parent}).all():
            child = int(edge["child"])
            if not edge["done"]:
                continue
            if edge["state"] == "waiting":
                s.run("undo_edge", {"parent": parent, "child": child})
                s.run("child_waits", {"id": child, "pending": int(edge["pending_parents"]) + 1})
                continue
            error = decode_error(edge["error"])
            if edge["state"] != "cancelled" or error is None or error.type != DEPENDENCY_FAILED:
                continue
            others = s.run("parent_edges", {"id": child}).all()
            if any(o["state"] in ("failed", "cancelled") for o in others):
                continue  # another parent's failure still holds it
            if s.run("child_rewaits", {"id": child, "pending": _rewait(s, child, others)}
                     ).one() is not None:
                frontier.append(child)


def _rewait(s: Session, child: int, parents: Sequence[Row]) -> int:
    """Count the end of each parent of `child` that has not ended (a retried one) again;
    returns how many that is."""
    pending = 0
    for other in parents:
        if other["state"] not in ENDED:
            pending += 1
            if other["done"]:
                s.run("undo_edge", {"parent": other["parent"], "child": child})
    return pending


def requeue_dependent(s: Session, job_id: int) -> None:
    """A job with parents, queued again by an admin retry (say one their failure
    cancelled): it waits for those that have not ended, or, all ended, is fed by them."""
    parents = s.run("parent_edges", {"id": job_id}).all()
    if not parents:
        return
    pending = _rewait(s, job_id, parents)
    if pending:
        s.run("job_rewaits", {"id": job_id, "pending": pending})
        return
    row = s.run("job_feed", {"id": job_id}).one()
    if row is None or row["feed"] is None or not str(row["args"]).startswith("[null"):
        return
    feed = json.loads(row["feed"])
    value = fed_value(feed, results_of(s, feed_ids(feed), {}))
    s.run("job_refed", {"id": job_id, "args": fed_arguments(str(row["args"]), value)})
