"""Celery tasks for the comparison, importable by `celery -A bench_celery worker`.

Broker: Redis at $BENCH_REDIS_URL (a DB of its own). No result backend; acks_late off (the
default); other settings default.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from celery.signals import task_postrun, worker_ready  # type: ignore[import-untyped]
from marks import mark_done, mark_ready, mark_stamp

app = Celery("bench_celery", broker=os.environ.get("BENCH_REDIS_URL",
                                                  "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    return None


@app.task(name="bench.stamp")  # type: ignore[untyped-decorator]
def stamp(tag: int) -> None:
    mark_stamp(tag)


@task_postrun.connect  # type: ignore[untyped-decorator]
def _count(sender: Any = None, **kwargs: Any) -> None:
    if sender is not None and sender.name == "bench.noop":
        mark_done()


@worker_ready.connect  # type: ignore[untyped-decorator]
def _ready(sender: Any = None, **kwargs: Any) -> None:
    mark_ready("celery-worker")
