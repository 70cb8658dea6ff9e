"""Checks on what users pass in. Each failure names the argument and says what is allowed."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import InvalidInput
from .serializer import lone_surrogate

MAX_TASK_NAME = 200
MAX_QUEUE_NAME = 100
MAX_UNIQUE_KEY = 255
PRIORITY_RANGE = (-1000, 1000)
MAX_ATTEMPTS_LIMIT = 1000
# The times a job can be scheduled at: what every reader can show as a date (years 1..9999).
MIN_TIMESTAMP = datetime(1, 1, 1, tzinfo=UTC).timestamp()
MAX_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()

_QUEUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def task_name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"task name must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput("task name must not be empty")
    if len(value) > MAX_TASK_NAME:
        raise InvalidInput(
            f"task name is {len(value)} characters long; the limit is {MAX_TASK_NAME}"
        )
    if value != value.strip() or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise InvalidInput(f"task name {value!r} must not contain whitespace or control characters")
    return value


def queue_name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"queue must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput("queue must not be empty")
    if len(value) > MAX_QUEUE_NAME:
        raise InvalidInput(
            f"queue name is {len(value)} characters long; the limit is {MAX_QUEUE_NAME}"
        )
    if not _QUEUE_RE.match(value):
        raise InvalidInput(
            f"queue {value!r} may only contain letters, digits and _ . : - "
            "(and must not start with . : or -)"
        )
    return value


def priority(value: Any) -> int:
    low, high = PRIORITY_RANGE
    if not _is_int(value) or not low <= value <= high:
        raise InvalidInput(
            f"priority must be an int from {low} to {high} (smaller runs first), got {value!r}"
        )
    return int(value)


def max_attempts(value: Any) -> int:
    if not _is_int(value) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise InvalidInput(
            f"max_attempts must be an int from 1 to {MAX_ATTEMPTS_LIMIT}, got {value!r}"
        )
    return int(value)


def non_negative_seconds(name: str, value: Any) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise InvalidInput(
            f"{name} must be a number of seconds >= 0 or a timedelta, got {value!r}"
        )
    return float(value)


def delay_seconds(value: Any) -> float:
    """A delay: seconds >= 0 (or a timedelta) that lands no later than the year 9999."""
    seconds = non_negative_seconds("delay", value)
    latest = MAX_TIMESTAMP - time.time()
    if seconds > latest:
        raise InvalidInput(
            f"delay of {seconds:g} s would run the job after the year 9999; "
            f"the longest delay possible now is {latest:.0f} s"
        )
    return seconds


def positive_seconds_or_none(name: str, value: Any) -> float | None:
    if value is None:
        return None
    seconds = non_negative_seconds(name, value)
    if seconds == 0:
        raise InvalidInput(f"{name} must be > 0 seconds, or None for no limit")
    return seconds


def aware_datetime(name: str, value: Any) -> float:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be timezone-aware, e.g. datetime.now(timezone.utc) + timedelta(...); "
            "a naive datetime is ambiguous"
        )
    try:
        timestamp = value.timestamp()
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"{name}={value.isoformat()} is not a time conveyor can store: {exc}"
                           ) from None
    if not MIN_TIMESTAMP <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInput(
            f"{name}={value.isoformat()} is {'after' if timestamp > 0 else 'before'} the years "
            "1..9999 in UTC, which is what conveyor stores and shows"
        )
    return timestamp


def unique_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"unique_key must be a non-empty str or None, got {value!r}")
    if len(value) > MAX_UNIQUE_KEY:
        raise InvalidInput(
            f"unique_key is {len(value)} characters long; the limit is {MAX_UNIQUE_KEY}"
        )
    if lone_surrogate(value) is not None or "\x00" in value:
        raise InvalidInput(
            f"unique_key {value!r} contains a NUL character or a lone surrogate, which not "
            "every database stores as text"
        )
    return value


WEIGHT_RANGE = (1, 1000)


def queue_spec(value: Any) -> tuple[str, int | None]:
    """A worker's queue as given: `NAME`, or `NAME:WEIGHT` (an int from 1 to 1000; a worker
    claims about WEIGHT jobs of this queue for each weight-1 job of another). What follows
    the last `:` is always the weight, so a queue whose name holds `:` is given with one."""
    if not isinstance(value, str):
        raise InvalidInput(f"queue must be a str, got {type(value).__name__}")
    text = value.strip()
    if ":" not in text:
        return queue_name(text), None
    name, _, weight = text.rpartition(":")
    low, high = WEIGHT_RANGE
    if not weight.isdigit() or not low <= int(weight) <= high:
        raise InvalidInput(
            f"queue {text!r}: the weight after ':' must be an int from {low} to {high}, got "
            f"{weight!r} (e.g. high:3,default:1; a queue whose name holds ':' is given with a "
            "weight, e.g. a:b:1)")
    return queue_name(name), int(weight)


# Byte sizes: SI suffixes count in 1000s, IEC ones (KiB...) in 1024s; case does not matter.
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6,
               "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
               "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30,
               "ti": 2**40, "tib": 2**40}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)$")


MAX_PREFETCH = 10_000


def prefetch(value: Any) -> int | None:
    """A worker's prefetch: "auto" (or None) sizes it from job durations; else jobs >= 0."""
    if value is None or value == "auto":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not _is_int(value) or not 0 <= value <= MAX_PREFETCH:
        raise InvalidInput(
            f"prefetch must be 'auto' or a whole number of jobs from 0 to {MAX_PREFETCH} "
            f"(0: claim no more jobs than slots), got {value!r}")
    return int(value)


def byte_size(name: str, value: Any) -> int:
    """A size in bytes: an int, or text such as 512MB, 1GiB, 200k (k, MB: 1000s; KiB: 1024s)."""
    if _is_int(value) and value > 0:
        return int(value)
    match = _SIZE_RE.match(value.strip().lower()) if isinstance(value, str) else None
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise InvalidInput(f"{name} must be a size in bytes > 0, such as 512MB, 1GiB or 200k "
                           f"(k, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024), got {value!r}")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise InvalidInput(f"{name} must be more than 0 bytes, got {value!r}")
    return size
