"""What ties one job to others, given with `task.options(...)`: the jobs it waits for
(`depends_on`), what a failed parent does to it (`on_parent_failure`), the callbacks its end
enqueues (`on_success`, `on_failure`), and the result it may reuse (`reuse_for`). Checked
here once, for `Task.options` and `Conveyor.options` alike."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from .canvas import Signature
from .errors import InvalidInput
from .job import Job

POLICIES: Final = ("cancel", "run")
NAMES: Final = ("depends_on", "on_parent_failure", "on_success", "on_failure", "reuse_for")


@dataclass(frozen=True, slots=True)
class JobLinks:
    depends_on: tuple[int, ...] = ()
    on_parent_failure: str = "cancel"
    on_success: Signature | None = None
    on_failure: Signature | None = None
    reuse_for: float | None = None  # seconds

    @classmethod
    def checked(cls, *, depends_on: Any = None, on_parent_failure: Any = None,
                on_success: Any = None, on_failure: Any = None, reuse_for: Any = None,
                unique_key: str | None = None) -> JobLinks | None:
        """The links given (None when none was)."""
        if (depends_on is None and on_parent_failure is None and on_success is None
                and on_failure is None and reuse_for is None):
            return None
        return cls(_job_ids(depends_on), policy(on_parent_failure),
                   _callback("on_success", on_success), _callback("on_failure", on_failure),
                   _window(reuse_for, unique_key))


def policy(value: Any) -> str:
    """`on_parent_failure`, checked (None: "cancel")."""
    if value is None:
        return "cancel"
    if value not in POLICIES:
        raise InvalidInput(f"on_parent_failure must be 'cancel' (a job whose parent failed is "
                           f"cancelled) or 'run' (it runs once all its parents ended), got "
                           f"{value!r}")
    return str(value)


def _job_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    items: Iterable[Any] = [value] if isinstance(value, Job | int) else value
    try:
        items = list(items)
    except TypeError:
        raise InvalidInput(f"depends_on takes jobs (Job handles or job ids), got "
                           f"{type(value).__name__} {value!r:.60}") from None
    ids: list[int] = []
    for item in items:
        job_id = item.id if isinstance(item, Job) else item
        if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
            raise InvalidInput(f"depends_on takes jobs (Job handles or positive job ids), "
                               f"got {type(item).__name__} {item!r:.60}")
        ids.append(job_id)
    return tuple(sorted(set(ids)))


def _callback(option: str, value: Any) -> Signature | None:
    if value is None:
        return None
    if not isinstance(value, Signature):
        raise InvalidInput(f"{option} must be a signature of the task to enqueue "
                           f"(notify.s(...) or notify.si(...)), got {type(value).__name__} "
                           f"{value!r:.60}")
    return value


def _window(value: Any, unique_key: str | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            seconds > 0 and math.isfinite(seconds)):
        raise InvalidInput(f"reuse_for must be a positive duration (a timedelta or seconds), "
                           f"got {value!r:.60}")
    if unique_key is None:
        raise InvalidInput("reuse_for reuses the result of a job with the same unique_key: "
                           "give unique_key= as well")
    return float(seconds)
