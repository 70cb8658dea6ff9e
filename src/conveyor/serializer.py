"""JSON encoding of arguments and results. Strict: what is stored decodes to what was given.

Only None, bool, int, float (finite), str, list, tuple (stored as a list) and dict with
str keys pass; anything else is refused with a message naming where it was found. The
stdlib `json` module would silently turn dict keys 1 into "1" and accept NaN, so the
structure is checked before encoding. Pickle is never used.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import InvalidInput

_SCALARS = (str, int, bool, type(None))
MAX_DEPTH = 100


def find_unserialisable(value: Any, path: str = "") -> str | None:
    """Return a description of the first value JSON cannot carry faithfully, or None."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return (
                f"{where or 'value'} is nested more than {MAX_DEPTH} levels deep "
                "(or contains itself)"
            )
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{where or 'value'} is {item!r}, which JSON cannot represent"
            continue
        if isinstance(item, list | tuple):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return (
                        f"{where or 'value'} has the key {key!r} of type "
                        f"{type(key).__name__}; JSON object keys must be str"
                    )
                stack.append((child, f"{where}[{key!r}]", depth + 1))
            continue
        return (
            f"{where or 'value'} is of type {type(item).__name__}, which is not "
            "JSON-serialisable (use str, int, float, bool, None, list or dict)"
        )
    return None


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def loads(text: str | bytes) -> Any:
    return json.loads(text)


def encode_arguments(task: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
    """Encode a call's arguments, or raise InvalidInput naming the offending argument."""
    if not args and not kwargs:
        return "[]", "{}"
    for index, value in enumerate(args):
        problem = find_unserialisable(value, f"argument {index}")
        if problem:
            raise InvalidInput(f"cannot enqueue {task!r}: {problem}")
    for name, value in kwargs.items():
        problem = find_unserialisable(value, f"keyword argument {name!r}")
        if problem:
            raise InvalidInput(f"cannot enqueue {task!r}: {problem}")
    return dumps(list(args)), dumps(kwargs)


def encode_result(value: Any) -> str:
    problem = find_unserialisable(value, "the return value")
    if problem:
        raise TypeError(problem)
    return dumps(value)
