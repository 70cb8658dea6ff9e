"""`conveyor demo`: conveyor's main job, end to end, on an embedded SQLite file."""

from __future__ import annotations

import logging
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..app import Conveyor
from ..canvas import chord
from ..context import current_job
from ..job import Job, JobRecord, JobState
from ..worker import Worker
from .group import cli


def build_demo_app(url: str) -> Conveyor:
    app = Conveyor(url, lease_timeout=10.0)

    @app.task(name="demo.thumbnail", queue="media")
    def thumbnail(image: str, size: int = 128) -> str:
        time.sleep(random.uniform(0.005, 0.03))
        return f"{image}@{size}px"

    @app.task(name="demo.transcode", queue="media", priority=5)
    def transcode(video: str, steps: int = 20) -> dict[str, object]:
        job = current_job()
        for step in range(steps):
            if job.cancel_requested:
                return {"video": video, "stopped_at": step}
            time.sleep(0.05)
            job.progress(step + 1, steps, f"encoding {video}")
        return {"video": video, "frames": steps * 24}

    @app.task(name="demo.fetch", backoff=0.2, max_attempts=4)
    def fetch(url: str) -> int:
        if current_job().attempt < 3:
            raise ConnectionError(f"{url}: connection reset (attempt {current_job().attempt})")
        return len(url)

    @app.task(name="demo.parse", max_attempts=2, backoff=0.1)
    def parse(document: str) -> None:
        raise ValueError(f"{document}: unexpected end of input at line 3")

    @app.task(name="demo.report")
    def report(day: str) -> str:
        return f"report for {day} sent"

    @app.task(name="demo.contact_sheet", queue="media")
    def contact_sheet(thumbnails: list[str], title: str) -> str:
        return f"{title}: {len(thumbnails)} thumbnails"

    return app


def _enqueue_demo_jobs(app: Conveyor, images: int) -> tuple[list[Job], Job, int]:
    """The demo's jobs, the one it cancels, and the id of its workflow."""
    tasks = app.tasks
    batch = [tasks["demo.thumbnail"].prepare(f"photo-{n:03}.jpg") for n in range(images)]
    jobs = app.enqueue_many(batch)
    jobs += [tasks["demo.transcode"].enqueue(f"clip-{n}.mp4", steps=12 + 4 * n) for n in range(3)]
    jobs += [tasks["demo.fetch"].enqueue(f"https://example.org/feed/{n}") for n in range(3)]
    jobs.append(tasks["demo.parse"].enqueue("invoice-17.xml"))
    jobs.append(tasks["demo.report"].options(delay=1.5).enqueue("yesterday"))
    # The same unique key twice: the second call returns the first job.
    first = tasks["demo.report"].options(unique_key="daily-report").enqueue("today")
    second = tasks["demo.report"].options(unique_key="daily-report").enqueue("today")
    assert first.id == second.id
    jobs.append(first)
    doomed = tasks["demo.transcode"].options(delay=60).enqueue("never.mp4")
    jobs.append(doomed)
    # A chord: the contact sheet waits for its four thumbnails and gets their results.
    sheet = chord([tasks["demo.thumbnail"].s(f"album-{n}.jpg", size=64) for n in range(4)],
                  tasks["demo.contact_sheet"].s("album")).enqueue(name="album contact sheet")
    jobs += sheet.jobs
    return jobs, doomed, sheet.id


@cli.command("demo")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file to use [default: a fresh temporary file].")
@click.option("--images", type=click.IntRange(0, 100_000), default=200, show_default=True,
              help="How many quick thumbnail jobs to enqueue.")
@click.option("-w", "--workers", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Workers sharing the database file.")
@click.option("-c", "--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Threads per worker.")
def demo_command(db_path: Path | None, images: int, workers: int, concurrency: int) -> None:
    """Enqueue a mix of jobs (fast, slow with progress, retried, failing, delayed, unique,
    cancelled, and a chord whose callback gets its members' results) and process them with a
    worker, showing what happens."""
    console = Console()
    # The demo shows what happened in its own words: its fresh database and its one job that
    # fails on purpose need no warnings of the kind a real worker gives.
    quiet = [logging.getLogger(name) for name in ("conveyor.sqlite", "conveyor.jobs")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        failed_id, workflow_id = _demo(console, db_path, images, workers, concurrency)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    _explore(console, db_path, failed_id, workflow_id)


def _demo(console: Console, db_path: Path | None, images: int, workers: int,
          concurrency: int) -> tuple[int | None, int]:
    with tempfile.TemporaryDirectory(prefix="conveyor-demo-") as tmp:
        path = db_path or Path(tmp) / "demo.db"
        if db_path is not None and db_path.exists():
            raise click.UsageError(f"{db_path} already exists; pass a new file name to --db")
        app = build_demo_app(f"sqlite:///{path}")
        try:
            return _run(console, app, path, images, workers, concurrency)
        finally:
            app.close()


def _explore(console: Console, db_path: Path | None, failed_id: int | None,
             workflow_id: int) -> None:
    """How to look at what the demo left behind, with the commands a user types next."""
    if db_path is None:
        console.print("\nThe database was temporary. To keep it and look around after:\n"
                      "  conveyor demo --db demo.db", highlight=False)
        return
    url = f"sqlite:///{db_path.resolve()}"
    example = failed_id if failed_id is not None else 1
    console.print(f"\nThe jobs stay in {db_path.resolve()}. Explore them:\n"
                  f"  export CONVEYOR_URL={url}\n"
                  "  conveyor status\n"
                  "  conveyor jobs list --state failed\n"
                  f"  conveyor jobs show {example}\n"
                  f"  conveyor workflows show {workflow_id}", highlight=False, soft_wrap=True)


def _run(console: Console, app: Conveyor, path: Path, images: int, workers: int,
         concurrency: int) -> tuple[int | None, int]:
    """Run the demo; returns the id of the job that failed for good, if any, and of its
    workflow."""
    console.print(f"[bold]conveyor demo[/] on [cyan]{path}[/]")
    started = time.monotonic()
    jobs, doomed, workflow_id = _enqueue_demo_jobs(app, images)
    console.print(f"enqueued {len(jobs)} jobs in {time.monotonic() - started:.3f} s; "
                  f"cancelling job {doomed.id} before it runs")
    doomed.cancel()

    pool = [Worker(app, queues=["default", "media"], concurrency=concurrency)
            for _ in range(workers)]
    threads = [threading.Thread(target=worker.run, name=f"demo-worker-{n}", daemon=True)
               for n, worker in enumerate(pool)]
    for thread in threads:
        thread.start()
    console.print(f"{workers} worker(s) x {concurrency} threads are processing them")
    ids = [job.id for job in jobs]
    transcodes = [job for job in jobs if job.task == "demo.transcode" and job.id != doomed.id]
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        overall = bars.add_task("all jobs", total=len(ids))
        per_video = {job.id: bars.add_task(f"transcode {job.args[0]}", total=1) for job in
                     transcodes}
        while True:
            records = [app.inspector.get(job_id) for job_id in ids]
            finished = sum(1 for record in records if record and record.state.is_terminal)
            bars.update(overall, completed=finished)
            for job in transcodes:
                record = app.inspector.get(job.id)
                if record and record.progress and record.progress.total:
                    bars.update(per_video[job.id], completed=record.progress.done,
                                total=record.progress.total)
                if record and record.state.is_terminal:
                    bars.update(per_video[job.id], completed=bars.tasks[per_video[job.id]].total)
            if finished == len(ids):
                break
            time.sleep(0.1)
    for worker in pool:
        worker.stop()
    for thread in threads:
        thread.join(timeout=30)
    for worker in pool:
        console.print(f"worker {worker.name} ran {worker.processed} job attempt(s)")
    elapsed = time.monotonic() - started
    failed_id = _summary(console, app, ids, elapsed)
    sheet = app.get_workflow(workflow_id)
    console.print(f"workflow {sheet.id}, {sheet.name}: {sheet.state}; the callback ran once "
                  f"all its members ended, with their results: {sheet.result(timeout=0)!r}",
                  highlight=False)
    return failed_id, workflow_id


def _summary(console: Console, app: Conveyor, ids: list[int], elapsed: float) -> int | None:
    records = [record for record in (app.inspector.get(job_id) for job_id in ids) if record]
    table = Table(title="What happened")
    table.add_column("task")
    table.add_column("jobs", justify="right")
    table.add_column("states")
    table.add_column("attempts", justify="right")
    table.add_column("example")
    by_task: dict[str, list[JobRecord]] = {}
    for record in records:
        by_task.setdefault(record.task, []).append(record)
    for task, group in sorted(by_task.items()):
        states = Counter(str(r.state) for r in group)
        attempts = sum(r.attempts for r in group)
        sample = group[-1]
        if sample.state is JobState.FAILED:
            example = f"[red]{sample.error}[/]"
        elif sample.state is JobState.CANCELLED:
            example = "[yellow]cancelled before it ran[/]"
        else:
            example = repr(sample.result)
        table.add_row(task, str(len(group)), ", ".join(f"{n} {s}" for s, n in states.items()),
                      str(attempts), example)
    console.print(table)
    console.print(f"{len(records)} jobs finished in {elapsed:.2f} s "
                  f"({len(records) / elapsed:.0f} jobs/s including waits); "
                  "retries waited out their backoff, the failing job kept its traceback:")
    failed = [r for r in records if r.state is JobState.FAILED]
    if failed:
        tb = failed[0].error.traceback if failed[0].error else None
        console.print((tb or "").rstrip().splitlines()[-1] if tb else "(no traceback)")
    return failed[0].id if failed else None
