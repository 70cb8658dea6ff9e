"""Checks on what users pass in. Each failure names the argument and says what is allowed."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from .errors import InvalidInput

MAX_TASK_NAME = 200
MAX_QUEUE_NAME = 100
MAX_UNIQUE_KEY = 255
PRIORITY_RANGE = (-1000, 1000)
MAX_ATTEMPTS_LIMIT = 1000

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
    return value.timestamp()


def unique_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"unique_key must be a non-empty str or None, got {value!r}")
    if len(value) > MAX_UNIQUE_KEY:
        raise InvalidInput(
            f"unique_key is {len(value)} characters long; the limit is {MAX_UNIQUE_KEY}"
        )
    return value
