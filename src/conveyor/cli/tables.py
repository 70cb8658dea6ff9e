"""Readable tables (rich) for people. User data always goes in as Text, never as markup."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..backends.base import WorkerRecord
from ..errors import CorruptJob
from ..job import AttemptRecord, JobRecord, JobState, Progress
from ..records import JobLink, WorkflowRecord
from ..views import QUEUE_COUNTED, STATE_ORDER, Snapshot, decoded, iso, worker_health
from ..waits import LimitUse, Reason, rate_text, summary
from ..workflow_views import Member, duration, member_counts, result_source, workflow_state
from .durations import format_duration

STATE_STYLES: dict[str, str] = {
    "waiting": "orange3",  # for its parents to end
    "scheduled": "cyan",
    "queued": "blue",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "alive": "green",
    "stopping": "yellow",
    "stale": "red",
    "active": "green",
    "paused": "yellow",
    "inactive": "dim",
}


def _table(title: str | None) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 show_edge=False, padding=(0, 1, 0, 0))


def plain_table(title: str | None) -> Table:
    """A table in the house style, for commands that build their own."""
    return _table(title)


def styled(word: str) -> Text:
    return Text(word, style=STATE_STYLES.get(word, ""))


def ago(now: float, then: float | None) -> str:
    if then is None:
        return "-"
    return "?" if iso(then) is None else f"{format_duration(now - then)} ago"


def short_json(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress_text(progress: Progress | None) -> str:
    if progress is None:
        return ""
    if progress.total:
        percent = 100.0 * progress.done / progress.total
        text = f"{progress.done:g}/{progress.total:g} ({percent:.0f}%)"
    else:
        text = f"{progress.done:g}"
    return f"{text} {progress.message}" if progress.message else text


def queues_table(snapshot: Snapshot) -> Table:
    table = _table("Queues")
    table.add_column("queue", no_wrap=True)
    for state in STATE_ORDER:
        table.add_column(state.value, justify="right", style=STATE_STYLES[state.value],
                         no_wrap=True)
    table.add_column("oldest\nwait", justify="right", no_wrap=True)
    table.add_column("done\n/min", justify="right", no_wrap=True)
    for stats in snapshot.queues:
        oldest = stats.oldest_queued_at
        name = Text(stats.queue)
        if stats.queue in snapshot.paused:
            name.append(" (queue paused)", style="yellow")
        table.add_row(
            name,
            *(str(stats.counts.get(state, 0)) for state in STATE_ORDER),
            "-" if oldest is None else format_duration(snapshot.at - oldest),
            str(stats.finished_recently),
        )
    if not snapshot.queues:
        table.add_row(Text("(no jobs yet)", style="dim"), *[""] * (len(STATE_ORDER) + 2))
    return table


def queue_settings_table(rows: list[dict[str, Any]]) -> Table:
    """`conveyor queues list`: each queue's status, order, concurrency limit and waiting and
    running jobs."""
    table = _table("Queues")
    table.add_column("queue", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("order", no_wrap=True)
    table.add_column("concurrency", justify="right", no_wrap=True)
    counted = [state.value for state in QUEUE_COUNTED]
    for state in counted:
        table.add_column(state, justify="right", style=STATE_STYLES[state], no_wrap=True)
    for row in rows:
        table.add_row(Text(row["queue"]),
                      Text("paused", style="yellow") if row["paused"] else Text("running"),
                      row["order"],
                      "-" if row["concurrency"] is None else str(row["concurrency"]),
                      *(str(row["counts"][state]) for state in counted))
    return table


def _keys(count: int) -> str:
    return f"{count} key" if count == 1 else f"{count} keys"


def limits_table(uses: list[LimitUse], now: float) -> Table:
    """`conveyor limits list`: each limit, its keys, its use now and its queued jobs."""
    table = _table("Limits")
    for name, justify in (("limit", "left"), ("rate", "left"), ("concurrency", "left"),
                          ("keys", "right"), ("running", "right"), ("throttled", "right"),
                          ("queued", "right"), ("next start", "right")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name != "limit")
    for use in uses:
        per_key = " per key" if use.keyed else ""
        if use.concurrency is None:
            concurrency, running = "-", str(use.running)
        elif use.keyed:
            concurrency = f"{use.concurrency}{per_key}"
            running = f"{use.running} ({_keys(use.at_concurrency)} at limit)"
        else:
            concurrency, running = str(use.concurrency), f"{use.running}/{use.concurrency}"
        held = use.held and use.queued
        table.add_row(
            Text(use.title, style="yellow" if held else ""),
            "-" if use.rate is None else rate_text(use.rate) + per_key,
            concurrency,
            "-" if use.keys is None else str(use.keys),
            running,
            "-" if use.rate is None else (_keys(use.throttled) if use.keyed
                                          else "yes" if use.throttled else "no"),
            str(use.queued),
            "-" if use.next_at is None else f"in {format_duration(use.next_at - now)}",
        )
    return table


def limits_lines(uses: list[LimitUse], now: float) -> Group:
    """`conveyor status`: one line per limit with queued jobs, and why they wait."""
    lines: list[RenderableType] = [Text("Limits", style="bold")]
    lines += [Text(summary(use, now, format_duration), style="yellow" if use.held else "")
              for use in uses]
    return Group(*lines)


def workers_table(workers: list[WorkerRecord], now: float, stale_after: float) -> Table:
    table = _table("Workers")
    for name, justify in (("name", "left"), ("host", "left"), ("pid", "right"),
                          ("queues", "left"), ("busy/\nslots", "right"), ("pool", "left"),
                          ("heartbeat", "right"), ("status", "left")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name not in ("name", "queues"))
    for worker in workers:
        table.add_row(
            Text(worker.name),
            Text(worker.host),
            str(worker.pid),
            Text(",".join(worker.queues)),
            f"{worker.busy}/{worker.concurrency}",
            worker.pool,
            ago(now, worker.heartbeat_at),
            styled(worker_health(worker, now, stale_after)),
        )
    if not workers:
        table.add_row(Text("(no workers running)", style="dim"), *[""] * 7)
    return table


def status_view(snapshot: Snapshot, title: str) -> Group:
    parts: list[RenderableType] = [Text(title, style="bold"), queues_table(snapshot)]
    if snapshot.limits:  # only limits with queued jobs: a short section, or none
        parts += [limits_lines(snapshot.limits, snapshot.limits_at), Text("")]
    parts.append(workers_table(snapshot.workers, snapshot.at, snapshot.stale_after))
    return Group(*parts)


def _corrupt(record: JobRecord) -> list[str]:
    """What in the record's row cannot be read, as far as a listing looks (arguments are not
    decoded for a listing; `jobs show` shows them)."""
    problems = list(record.corrupt)
    if record.state is JobState.SUCCEEDED:
        decoded(lambda: record.result, problems)
    return problems


def _job_note(record: JobRecord, now: float) -> Text:
    problems = _corrupt(record)
    if problems:
        return Text(f"corrupt row: {'; '.join(problems)}", style="red")
    if record.state is JobState.FAILED and record.error is not None:
        return Text(str(record.error), style="red")
    if record.state is JobState.WAITING:
        count = record.pending_parents
        return Text(f"waits for {count} parent{'' if count == 1 else 's'} to end"
                    if count else "waits for its parents to end")
    if record.state is JobState.SCHEDULED:
        when = format_duration(record.run_at - now)
        if _waiting_retry(record):
            due = f"in {when}" if record.run_at > now else "due now"
            return Text(f"retry {record.attempts + 1}/{record.max_attempts} {due}")
        return Text(f"runs in {when}")
    if record.state is JobState.SUCCEEDED:
        return Text(short_json(record.result))
    if record.cancel_requested and record.state is JobState.RUNNING:
        return Text("cancel requested", style="magenta")
    if record.state is JobState.RUNNING and record.lease_owner:
        return Text(f"on {record.lease_owner}")
    if record.error is not None:
        return Text(f"last error: {record.error}", style="red")
    return Text("")


def _waiting_retry(record: JobRecord) -> bool:
    """Whether the job ran before and waits to run again (its backoff, or for a worker)."""
    return record.attempts > 0 and record.state in (JobState.SCHEDULED, JobState.QUEUED)


def jobs_table(records: list[JobRecord], now: float) -> Table:
    table = _table(None)
    for name, justify in (("id", "right"), ("task", "left"), ("queue", "left"),
                          ("state", "left"), ("pri", "right"), ("tries", "right"),
                          ("progress", "left"), ("enqueued", "right"), ("note", "left")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name not in ("task", "progress", "note"))
    for record in records:
        table.add_row(
            str(record.id),
            Text(record.task),
            Text(record.queue),
            styled(record.state.value),
            str(record.priority),
            f"{record.attempts}/{record.max_attempts}",
            Text(progress_text(record.progress)),
            ago(now, record.enqueued_at),
            _job_note(record, now),
        )
    return table


def _when(now: float, at: float | None) -> str:
    if at is None:
        return "-"
    if iso(at) is None:
        return "? (unreadable)"
    return f"{iso(at)} ({_relative(now, at)})"


def _relative(now: float, at: float) -> str:
    delta = at - now
    return f"in {format_duration(delta)}" if delta > 0 else f"{format_duration(-delta)} ago"


def _pretty(read: Callable[[], Any]) -> Text:
    """A record's args, kwargs or result as indented JSON, or why it cannot be shown."""
    try:
        return Text(json.dumps(read(), indent=2, ensure_ascii=False))
    except CorruptJob as exc:
        return Text(f"<cannot be shown: {exc}>", style="red")


def links_table(title: str, links: Sequence[JobLink]) -> Table:
    """A job's parents or children: id, task, state."""
    table = _table(title)
    for name, justify in (("id", "right"), ("task", "left"), ("state", "left")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name != "task")
    for link in links:
        table.add_row(str(link.id), Text(link.task), styled(link.state.value))
    return table


def job_detail(record: JobRecord, attempts: list[AttemptRecord], now: float, *,
               waits: Sequence[Reason] = (), parents: Sequence[JobLink] = (),
               children: Sequence[JobLink] = ()) -> Group:
    """Everything about one job: arguments, result, progress, timings, its parents and
    children, every attempt."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    rows: list[tuple[str, Text | str]] = [
        ("task", Text(record.task)),
        ("queue", Text(record.queue)),
        ("state", styled(record.state.value)),
    ]
    for wait in waits:  # what holds it back: a paused queue, a limit
        text = Text(wait.message, style="yellow")
        if wait.next_at is not None:
            text.append(f" ({_relative(now, wait.next_at)})", style="yellow")
        rows.append(("waiting", text))
    if record.workflow is not None:
        rows.append(("workflow", Text(f"{record.workflow} "
                                      f"(conveyor workflows show {record.workflow})")))
    rows += [
        ("priority", str(record.priority)),
        ("attempts", f"{record.attempts} of {record.max_attempts}"),
    ]
    if record.unique_key is not None:
        rows.append(("unique key", Text(record.unique_key)))
    if record.schedule is not None:
        slot = iso(record.schedule_slot) if record.schedule_slot is not None else "run by hand"
        rows.append(("schedule", Text(f"{record.schedule} ({slot})")))
    if record.cancel_requested:
        rows.append(("cancel", Text("requested", style="magenta")))
    if record.lease_owner:
        rows.append(("worker", Text(record.lease_owner)))
        rows.append(("lease expires", _when(now, record.lease_expires_at)))
    retry = _waiting_retry(record)
    if record.progress is not None:
        # What a job reported last: final once it ended, and an earlier attempt's while it
        # waits to run again (the next attempt starts over).
        label = ("final progress" if record.state.is_terminal else
                 f"progress of attempt {record.attempts}" if retry else "progress")
        rows.append((label, Text(progress_text(record.progress))))
    rows += [
        ("enqueued", _when(now, record.enqueued_at)),
        ("run at", _when(now, record.run_at)),
        ("started", _when(now, record.started_at)),
        ("finished", _when(now, record.finished_at)),
    ]
    if retry:
        next_try = f"attempt {record.attempts + 1} of {record.max_attempts}"
        if record.state is JobState.SCHEDULED and record.run_at > now:
            rows.append(("timings", f"waiting to retry at {_when(now, record.run_at)}, "
                                    f"{next_try}"))
        else:
            rows.append(("timings", f"retry due since {_when(now, record.run_at)}, {next_try}: "
                                    "waiting for a worker"))
    elif record.started_at is not None:
        waited = record.started_at - record.run_at
        end = record.finished_at if record.finished_at is not None else now
        rows.append(("timings", f"waited {format_duration(max(0.0, waited))}, "
                                f"ran {format_duration(end - record.started_at)}"
                                + ("" if record.finished_at is not None else " so far")))
    for label, value in rows:
        facts.add_row(label, value)
    parts: list[RenderableType] = [Text(f"Job {record.id}", style="bold"), facts,
                                   Text("args", style="bold"), _pretty(lambda: record.args),
                                   Text("kwargs", style="bold"), _pretty(lambda: record.kwargs)]
    if record.state is JobState.SUCCEEDED:
        parts += [Text("result", style="bold"), _pretty(lambda: record.result)]
    if record.corrupt:
        parts += [Text("corrupt row", style="bold red"),
                  *(Text(problem, style="red") for problem in record.corrupt)]
    if record.error is not None:
        parts += [Text("error", style="bold"), Text(str(record.error), style="red")]
    if parents:
        parts.append(links_table("Parents", parents))
    if children:
        parts.append(links_table("Children", children))
    if attempts:
        table = _table("Attempts")
        for name in ("#", "outcome", "worker", "started", "took", "error"):
            table.add_column(name)
        for attempt in attempts:
            took = ("-" if attempt.started_at is None
                    else format_duration(attempt.finished_at - attempt.started_at))
            table.add_row(str(attempt.attempt), styled(attempt.outcome),
                          Text(attempt.worker or "-"), iso(attempt.started_at) or "-", took,
                          Text(str(attempt.error) if attempt.error else ""))
        parts.append(table)
        seen: dict[str, int] = {}
        for attempt in attempts:
            if attempt.error is None or not attempt.error.traceback:
                continue
            traceback = attempt.error.traceback.rstrip()
            heading = Text(f"attempt {attempt.attempt} traceback", style="bold")
            if traceback in seen:
                heading.append(f": the same as attempt {seen[traceback]}", style="dim")
                parts.append(heading)
            else:
                seen[traceback] = attempt.attempt
                parts += [heading, Text(traceback)]
    else:
        parts.append(Text("no attempt has run yet", style="dim"))
    return Group(*parts)


# -- workflows -------------------------------------------------------------------------------

DEEPEST = 12  # tree levels drawn indented; deeper members are drawn at this depth


def counts_text(counts: dict[str, int]) -> Text:
    """'2 succeeded, 1 running, 3 waiting': the non-zero counts, each in its state's colour."""
    text = Text()
    for state in STATE_ORDER:
        count = counts.get(state.value, 0)
        if count:
            if text:
                text.append(", ")
            text.append(f"{count} {state.value}", style=STATE_STYLES[state.value])
    return text if text else Text("no jobs", style="dim")


def workflows_table(rows: list[dict[str, Any]], now: float) -> Table:
    """`conveyor workflows list`: id, name, state, jobs by state, created."""
    table = _table(None)
    for name, justify in (("id", "right"), ("name", "left"), ("state", "left"),
                          ("jobs", "left"), ("created", "right")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name not in ("name", "jobs"))
    for row in rows:
        created = row["created_at"]
        table.add_row(str(row["id"]), Text(row["name"]), styled(row["state"]),
                      counts_text(row["counts"]),
                      "-" if created is None else ago(now, _timestamp(created)))
    return table


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def id_ranges(ids: Sequence[int]) -> str:
    """'4-7, 9': ids, runs of consecutive ones as ranges (a chord's members are in a row)."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            first, last = ordered[start], ordered[index - 1]
            parts.append(str(first) if first == last else
                         f"{first}, {last}" if last == first + 1 else f"{first}-{last}")
            start = index
    return ", ".join(parts)


def _tree_prefixes(members: Sequence[Member]) -> list[str]:
    """The guide lines before each member of a tree (in tree order): ├─ and └─ for a member,
    │ for an ancestor with more members below it."""
    last: list[bool] = [True] * len(members)
    seen: set[int | None] = set()
    for index in range(len(members) - 1, -1, -1):  # the last member under each parent
        key = members[index].under if members[index].depth else None  # None: the roots
        last[index] = key not in seen
        seen.add(key)
    prefixes: list[str] = []
    guides: list[bool] = []  # guides[k]: the open ancestor at depth k + 1 was the last
    for member, is_last in zip(members, last, strict=True):
        depth = min(member.depth, DEEPEST)
        if depth == 0:
            guides = []
            prefixes.append("")
            continue
        guides = guides[:depth - 1]
        prefix = "".join("   " if done else "│  " for done in guides)
        prefixes.append(prefix + ("└─ " if is_last else "├─ "))
        guides.append(is_last)
    return prefixes


def _result_text(source: Any) -> str:
    if source is None:
        return "? (the stored result source cannot be read)"
    if isinstance(source, list):
        flat: list[int] = []
        pending = [source]
        while pending:
            item = pending.pop()
            if isinstance(item, list):
                pending.extend(reversed(item))
            else:
                flat.append(int(item))
        return f"a list of the results of jobs {id_ranges(flat)}" if flat else "an empty list"
    return f"the result of job {source}"


def workflow_detail(record: WorkflowRecord, members: Sequence[Member], now: float) -> Group:
    """`conveyor workflows show`: its facts, then its jobs as a tree."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    state = workflow_state(record)
    policy = ("a failed or cancelled job cancels the jobs waiting for it"
              if record.on_parent_failure == "cancel" else
              "the jobs waiting for a failed or cancelled job run anyway")
    counts = {each.value: n for each, n in member_counts(record).items()}
    rows: list[tuple[str, Text | str]] = [
        ("name", Text(record.name)),
        ("state", styled(state)),
        ("result", Text(_result_text(result_source(record)))),
        ("on failure", f"{record.on_parent_failure}: {policy}"),
        ("created", _when(now, record.created_at)),
        ("jobs", Text(f"{len(record.jobs)}: ").append_text(counts_text(counts))),
    ]
    for label, value in rows:
        facts.add_row(label, value)
    table = _table("Jobs")
    for name, justify in (("job", "left"), ("state", "left"), ("tries", "right"),
                          ("took", "right"), ("note", "left")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name != "note")
    for member, prefix in zip(members, _tree_prefixes(members), strict=True):
        job = member.job
        took = duration(job, now)
        notes: list[str] = []
        if member.depth > DEEPEST:
            notes.append(f"under job {member.under}")
        if member.also_waits_on:
            which = id_ranges(member.also_waits_on)
            notes.append(f"also waits on job{'s' if len(member.also_waits_on) > 1 else ''} "
                         f"{which}")
        where = Text(prefix, style="dim")
        where.append(f"{job.id} ")
        where.append(job.task)
        table.add_row(where, styled(job.state.value), f"{job.attempts}/{job.max_attempts}",
                      "-" if took is None else format_duration(took) + (
                          " so far" if job.finished_at is None else ""),
                      Text("; ".join(notes), style="dim"))
    if not members:
        table.add_row(Text("(its jobs were deleted)", style="dim"), "", "", "", "")
    return Group(Text(f"Workflow {record.id}", style="bold"), facts, table)
