"""JSON encoding of arguments and results. Strict: what is stored decodes to what was given.

Only None, bool, int (signed 64-bit), float (finite), str (without lone surrogates), list,
tuple (stored as a list) and dict with str keys pass, nested at most MAX_DEPTH levels; anything
else is refused with a message naming where it was found. The stdlib `json` module would
silently turn dict keys 1 into "1" and accept NaN, and a lone surrogate (what `os.listdir()`
gives for a file name that is not UTF-8) encodes to text no database accepts, so the structure
is checked before encoding. Pickle is never used.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from itertools import chain
from operator import add
from typing import Any

from .errors import InvalidInput, PayloadTooLarge

_SCALARS = (str, int, bool, type(None))
MAX_DEPTH = 100
# Integers other languages (and PostgreSQL's bigint, and JavaScript's BigInt-free parsers
# at worst lossily) read back: beyond them JSON interop breaks, and Python's own int-to-str
# limit (4300 digits) would make encoding raise.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
KIB = 1024
MIB = 1024 * KIB
DEFAULT_MAX_PAYLOAD = 4 * MIB  # bytes of encoded JSON: arguments together, or one result
MIN_MAX_PAYLOAD = 1 * KIB

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAX_SHOWN_KEY = 40
_MAX_SHOWN_STEPS = 12

# A place in a value: None for the root, else (parent place, index or key).
_Place = tuple[Any, Any] | None


def lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate in `text`, or None. O(1) for ASCII text."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def short_repr(value: Any, limit: int = 60) -> str:
    """repr() for messages: bounded, and never raising (an int past Python's 4300-digit
    str limit, an object whose __repr__ fails)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<int of {value.bit_length()} bits>"
    try:
        shown = repr(value)
    except Exception:
        return f"<{type(value).__name__} whose repr() failed>"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _describe(root: str, place: _Place) -> str:
    """`root[0]['key']...`, built only when something is wrong (walking is the hot path)."""
    steps: list[str] = []
    while place is not None:
        place, step = place
        if isinstance(step, str):
            shown = repr(step)
            if len(shown) > _MAX_SHOWN_KEY:
                shown = shown[: _MAX_SHOWN_KEY - 4] + "...'"
            steps.append(f"[{shown}]")
        else:
            steps.append(f"[{step}]")
    steps.reverse()
    if len(steps) > _MAX_SHOWN_STEPS:
        half = _MAX_SHOWN_STEPS // 2
        hidden = len(steps) - 2 * half
        steps = [*steps[:half], f"...({hidden} more levels)...", *steps[-half:]]
    return (root or "value") + "".join(steps)


def find_unserialisable(value: Any, path: str = "", *, check_text: bool = True) -> str | None:
    """Return a description of the first value JSON cannot carry faithfully (or no database
    can store), or None. The same rule for arguments and results.

    `check_text=False` leaves out the search for lone surrogates, for callers that encode
    the whole value to UTF-8 anyway (one C-speed pass instead of a regex per string) and
    come back with `check_text=True` only to name where one is."""
    stack: list[tuple[Any, _Place, int]] = [(value, None, 0)]
    while stack:
        item, place, depth = stack.pop()  # depth: how many lists and dicts hold `item`
        if isinstance(item, str):
            at = lone_surrogate(item) if check_text else None
            if at is not None:
                return (
                    f"{_describe(path, place)} is a str with a lone surrogate "
                    f"{item[at]!r} at index {at} (typically a file name that is not UTF-8), "
                    "which no database stores as text; decode such names with "
                    "os.fsencode(name).decode('utf-8', 'replace') or pass them as bytes.hex()"
                )
            continue
        if isinstance(item, int) and not isinstance(item, bool):
            if not INT_MIN <= item <= INT_MAX:
                return (
                    f"{_describe(path, place)} is an int too large for JSON interop (outside "
                    "the signed 64-bit range -2**63 .. 2**63-1); pass it as a str"
                )
            continue
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{_describe(path, place)} is {item!r}, which JSON cannot represent"
            continue
        if depth >= MAX_DEPTH and isinstance(item, list | tuple | dict):
            return (
                f"{_describe(path, place)} is nested more than {MAX_DEPTH} levels deep "
                "(or contains itself)"
            )
        if isinstance(item, list | tuple):
            stack.extend((child, (place, i), depth + 1) for i, child in enumerate(item))
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return (
                        f"{_describe(path, place)} has the key {short_repr(key)} of type "
                        f"{type(key).__name__}; JSON object keys must be str"
                    )
                at = lone_surrogate(key) if check_text else None
                if at is not None:
                    return (
                        f"{_describe(path, place)} has the key {short_repr(key)} with a lone "
                        "surrogate "
                        f"at index {at} (typically a file name that is not UTF-8), which no "
                        "database stores as text"
                    )
                stack.append((child, (place, key), depth + 1))
            continue
        return (
            f"{_describe(path, place)} is of type {type(item).__name__}, which is not "
            "JSON-serialisable (use str, int, float, bool, None, list or dict)"
        )
    return None


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def loads(text: str | bytes) -> Any:
    return json.loads(text)


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8; O(1) for ASCII text."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def stored_size(text: str) -> int | None:
    """Bytes of `text` in UTF-8, or None when it holds a lone surrogate (no database takes
    it). O(1) for ASCII text."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def plainly_storable(args_texts: Sequence[Any], kwargs_texts: Sequence[Any],
                     max_bytes: int) -> bool:
    """Whether every pair of encoded arguments is str that any database stores (no NUL, no
    lone surrogate) and fits `max_bytes` together, judged over a whole batch at C speed. False
    means some pair may not: the caller then checks them one by one, to say which and why."""
    if not set(map(type, args_texts)) == set(map(type, kwargs_texts)) == {str}:
        return False
    text = "".join(chain(args_texts, kwargs_texts))
    if "\x00" in text:
        return False
    widest: int = max(map(add, map(len, args_texts), map(len, kwargs_texts)))
    if text.isascii():
        return widest <= max_bytes
    if stored_size(text) is None:  # a lone surrogate
        return False
    return widest * 4 <= max_bytes  # UTF-8 takes at most 4 bytes a character


def format_size(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    if size >= KIB:
        return f"{size / KIB:.1f} KiB"
    return f"{size} bytes"


def encode_arguments(
    task: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    max_bytes: int = DEFAULT_MAX_PAYLOAD,
) -> tuple[str, str]:
    """Encode a call's arguments, or raise InvalidInput naming the offending argument."""
    if not args and not kwargs:
        return "[]", "{}"
    problem = _arguments_problem(args, kwargs, check_text=False)
    if problem:
        raise InvalidInput(f"cannot enqueue {task!r}: {problem}")
    args_json, kwargs_json = dumps(list(args)), dumps(kwargs)
    args_size, kwargs_size = stored_size(args_json), stored_size(kwargs_json)
    if args_size is None or kwargs_size is None:
        problem = _arguments_problem(args, kwargs, check_text=True)
        raise InvalidInput(f"cannot enqueue {task!r}: {problem or 'a lone surrogate'}")
    size = args_size + kwargs_size
    if size > max_bytes:
        raise PayloadTooLarge(
            f"cannot enqueue {task!r}: its arguments are {format_size(size)} of JSON, over the "
            f"limit of {format_size(max_bytes)} ({_largest_argument(args, kwargs)}); pass a "
            "path or an id instead of the data, or raise max_payload_bytes "
            "(Conveyor(..., max_payload_bytes=...))"
        )
    return args_json, kwargs_json


def _arguments_problem(
    args: tuple[Any, ...], kwargs: dict[str, Any], *, check_text: bool
) -> str | None:
    for index, value in enumerate(args):
        problem = find_unserialisable(value, f"argument {index}", check_text=check_text)
        if problem:
            return problem
    for name, value in kwargs.items():
        at = lone_surrogate(name) if check_text else None
        if at is not None:  # only reachable through **{...}
            return (
                f"the keyword argument name {short_repr(name)} has a lone surrogate at index "
                f"{at}, which no database stores as text"
            )
        problem = find_unserialisable(value, f"keyword argument {name!r}", check_text=check_text)
        if problem:
            return problem
    return None


def _largest_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Which argument is biggest, for the message (only computed when refusing)."""
    sizes = [(utf8_size(dumps(value)), f"argument {index}") for index, value in enumerate(args)]
    sizes += [(utf8_size(dumps(value)), f"keyword argument {name!r}")
              for name, value in kwargs.items()]
    size, name = max(sizes)
    return f"the largest is {name}, {format_size(size)}"


def encode_result(value: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> str:
    """JSON for a task's return value. Raises TypeError (with where) for a value that cannot
    be stored, PayloadTooLarge for one over `max_bytes`."""
    if value is None:  # what most tasks return
        return "null"
    problem = find_unserialisable(value, "the return value", check_text=False)
    if problem:
        raise TypeError(problem)
    text = dumps(value)
    size = stored_size(text)
    if size is None:
        problem = find_unserialisable(value, "the return value")
        raise TypeError(problem or "the return value holds a lone surrogate")
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the return value is {format_size(size)} of JSON, over the limit of "
            f"{format_size(max_bytes)}; store large results elsewhere (a file, object "
            "storage) and return a path or an id, or raise max_payload_bytes "
            "(Conveyor(..., max_payload_bytes=...))"
        )
    return text


# -- text that every database column takes ---------------------------------------------------


def storable_text(text: str) -> str:
    """`text` made safe for any database text column: lone surrogates (a non-UTF-8 file name
    decoded by Python) become the bytes they stand for as backslash escapes (\\xff), or
    \\udXXX when they stand for none; NUL characters, which PostgreSQL text refuses, become
    \\x00. Text that needs no change is returned as it is."""
    if text.isascii():
        return text.replace("\x00", "\\x00") if "\x00" in text else text
    if _UNSTORABLE.search(text) is None:
        return text
    text = text.replace("\x00", "\\x00")
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate surrogateescape did not make (\ud800-\udc7f)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def clip_text(text: str, limit: int, *, keep_end: bool = False) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, saying how much was cut. With `keep_end`,
    the start and the end are kept (a traceback's last lines name the error)."""
    if len(text) * 4 <= limit:
        return text
    size = utf8_size(text)
    if size <= limit:
        return text
    data = text.encode("utf-8", "surrogatepass")
    note = f"\n[... {format_size(size)} in all, cut to {format_size(limit)} ...]\n"
    budget = max(0, limit - len(note))
    if not keep_end:
        return data[:budget].decode("utf-8", "ignore") + note.rstrip("\n")
    head = budget // 2
    tail = budget - head
    return (data[:head].decode("utf-8", "ignore") + note
            + data[len(data) - tail:].decode("utf-8", "ignore"))
