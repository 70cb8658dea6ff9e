"""Durations as people type them (30, 30s, 10m, 1h30m, 1.5d) and as the CLI prints them."""

from __future__ import annotations

import math
import re

UNITS: dict[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})([smhdw])")
_WHOLE = re.compile(rf"(?:{_NUMBER}[smhdw])+")
HINT = "write seconds (30) or numbers with units s, m, h, d, w (30s, 10m, 2h, 1d, 1h30m)"


def parse_duration(text: str) -> float:
    """Seconds in `text`: a bare number is seconds; parts with units add up ("1h30m")."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError(f"an empty duration; {HINT}")
    if cleaned.startswith("-"):
        raise ValueError(f"{text!r} is negative; a duration is 0 or more")
    if re.fullmatch(_NUMBER, cleaned):
        seconds = float(cleaned)
    elif _WHOLE.fullmatch(cleaned):
        units = [unit for _, unit in _PART.findall(cleaned)]
        if len(set(units)) != len(units):
            raise ValueError(f"{text!r} names a unit twice; {HINT}")
        seconds = sum(float(number) * UNITS[unit] for number, unit in _PART.findall(cleaned))
    else:
        raise ValueError(f"{text!r} is not a duration; {HINT}")
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is too large")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: 0.4s, 42s, 5m 03s, 2h 10m, 3d 4h; ? for NaN (a damaged time)."""
    if math.isnan(seconds):
        return "?"
    if not math.isfinite(seconds):
        return "forever"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
