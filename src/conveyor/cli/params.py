"""click parameter types for what people type: durations, ISO datetimes, JSON, job states.

A value that does not parse fails as a click usage error (exit code 2) naming the option."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from .. import validation
from ..errors import InvalidInput
from .durations import parse_duration

FOREVER = "forever"

if TYPE_CHECKING:  # click >= 8.4 types these as generics; older clicks cannot subscript them
    _IntType = click.ParamType[int]
    _FloatType = click.ParamType[float]
    _DateTimeType = click.ParamType[datetime]
    _AnyType = click.ParamType[Any]
else:
    _IntType = _FloatType = _DateTimeType = _AnyType = click.ParamType


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _shown(text: str, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


class JobId(_IntType):
    """A job id: a positive integer."""

    name = "id"
    what = "job"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        text = str(value).strip()
        if not text.isdigit() or int(text) < 1:
            self.fail(f"{value!r} is not a {self.what} id (a positive whole number)", param, ctx)
        return int(text)


class WorkflowId(JobId):
    """A workflow id: a positive integer."""

    what = "workflow"


class Duration(_FloatType):
    """Seconds: 30, 30s, 10m, 2h, 1d, 1h30m."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class WaitTime(Duration):
    """A duration, or `forever` (what a bare `--wait` means)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, str):
            if value.strip().lower() in (FOREVER, "inf"):
                return math.inf
            if value.lstrip()[:1] in ("[", "{"):
                self.fail(f"{value!r} looks like JSON arguments, not a time to wait: put --wait "
                          "after the arguments, or write --wait=SECONDS", param, ctx)
        return super().convert(value, param, ctx)


class AwareDateTime(_DateTimeType):
    """An ISO 8601 datetime with a timezone. A naive one is refused: it is ambiguous."""

    name = "iso-datetime"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 datetime; write e.g. "
                          "2030-01-31T09:00:00+00:00 or 2030-01-31T09:00Z", param, ctx)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.fail(f"{value!r} has no timezone, so it is ambiguous; add one, e.g. "
                      f"{parsed.isoformat()}Z for UTC or {parsed.isoformat()}+02:00", param, ctx)
        return parsed


class JsonValue(_AnyType):
    """JSON text of one kind (array or object)."""

    def __init__(self, kind: type[list[Any]] | type[dict[str, Any]], example: str,
                 hint: str = "") -> None:
        self.kind = kind
        self.example = example
        self.hint = hint
        self.name = "json-array" if kind is list else "json-object"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, self.kind):
            return value
        text = str(value)
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            self.fail(f"{_shown(text)} is not valid JSON ({exc.msg} at column {exc.colno}); "
                      f"write e.g. {self.example}", param, ctx)
        except ValueError as exc:  # an integer past Python's 4300-digit limit
            self.fail(f"{_shown(text)} cannot be read: {exc}", param, ctx)
        except RecursionError:
            self.fail(f"{_shown(text)} is nested too deeply to read", param, ctx)
        if not isinstance(parsed, self.kind):
            wanted = "array" if self.kind is list else "object"
            self.fail(f"must be a JSON {wanted} like {self.example}, got "
                      f"{_json_kind(parsed)}{self.hint}", param, ctx)
        return parsed


JOB_ID = JobId()
WORKFLOW_ID = WorkflowId()


class ByteSize(_IntType):
    """Bytes: 512MB, 1GiB, 200k (k, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        try:
            return validation.byte_size("size", value)
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)


class Prefetch(_AnyType):
    """A worker's prefetch: auto, or a number of jobs (0: none)."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        try:
            jobs = validation.prefetch(value)
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)
        return "auto" if jobs is None else jobs


DURATION = Duration()
PREFETCH = Prefetch()
BYTE_SIZE = ByteSize()
WAIT_TIME = WaitTime()
AWARE_DATETIME = AwareDateTime()
ARGS_ARRAY = JsonValue(list, "'[1, \"two\"]'",
                       "; give keyword arguments with --kwargs '{\"name\": 1}'")
KWARGS_OBJECT = JsonValue(dict, "'{\"name\": 1}'",
                          "; give positional arguments as ARGS_JSON '[1, 2]'")
