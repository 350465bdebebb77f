"""Reading values out of a source's JSON: dot paths (with ``*`` and array
indexes), JSON-typed comparisons and timestamps. Pure functions."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterable, List, Mapping, Optional, Tuple

__all__ = ["extract", "is_number", "same_json", "parse_timestamp"]


def extract(data: Any, path: str) -> List[Tuple[str, Any]]:
    """Every ``(concrete path, value)`` at dot ``path`` in ``data``.

    A numeric segment indexes an array (``tyres.3.pressure_bar``); ``*``
    takes every item of an array or every value of an object. A missing
    key yields nothing for that branch.
    """
    found: List[Tuple[str, Any]] = [("", data)]
    for segment in path.split("."):
        following: List[Tuple[str, Any]] = []
        for where, value in found:
            for key, child in _children(value, segment):
                following.append((f"{where}.{key}" if where else key, child))
        found = following
    return found


def _children(value: Any, segment: str) -> Iterable[Tuple[str, Any]]:
    if isinstance(value, Mapping):
        if segment == "*":
            return [(str(k), v) for k, v in value.items()]
        return [(segment, value[segment])] if segment in value else []
    if isinstance(value, (list, tuple)):
        if segment == "*":
            return [(str(i), v) for i, v in enumerate(value)]
        if segment.isdigit() and int(segment) < len(value):
            return [(segment, value[int(segment)])]
    return []


def is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def parse_timestamp(value: Any) -> Optional[float]:
    """Epoch seconds from a number or an RFC 3339 string (a string without
    an offset is taken as UTC); None when it is neither."""
    if is_number(value):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
