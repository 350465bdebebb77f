"""What one polled request gives: an :class:`Answer` (a bus's valid
answer or why there is none), and how a bus's answers are read."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import attrs

__all__ = [
    "HEALTH",
    "LEVELS",
    "Answer",
    "Fetch",
    "decode",
    "read_health",
    "pick",
]

LEVELS = ("ok", "degraded", "critical", "starting", "unknown")
#: The name of the health endpoint in ``poll.values`` paths.
HEALTH = "health"


@attrs.frozen
class Answer:
    """One polled request: a valid answer's HTTP status and JSON data, or
    ``error`` saying why there is none."""

    status: Optional[int] = None
    data: Any = None
    error: Optional[str] = None


@attrs.frozen
class Fetch:
    """An endpoint's last good answer."""

    data: Any
    fetched_at: float
    status: int


def read_health(body: Any) -> Optional[Tuple[str, List[Dict[str, Any]]]]:
    """The level and failing checks of a bus's ``/health`` JSON, or None
    when ``body`` is not such an answer."""
    if not isinstance(body, dict) or body.get("status") not in LEVELS[:4]:
        return None
    checks = body.get("checks")
    failing = [
        {k: c.get(k) for k in ("name", "status", "level", "reason")}
        for c in (checks if isinstance(checks, list) else ())
        if isinstance(c, dict) and c.get("status") != "ok"
    ]
    return body["status"], failing


def pick(data: Any, path: Sequence[str]) -> Any:
    """The value at dotted ``path`` (object keys, list indexes) in
    ``data``; None when it is not there."""
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


def decode(body: bytes, status: int, health: bool) -> Answer:
    """A bus's answer: any 2xx with JSON; for its health also a 503 (the
    bus is up, its level critical or starting)."""
    if not (200 <= status < 300 or (health and status == 503)):
        return Answer(error=f"answered {status}")
    try:
        data = json.loads(body, parse_constant=_null, parse_float=_finite)
    except ValueError:
        return Answer(error="the answer is not JSON")
    return Answer(status=status, data=data)


def _null(name: str) -> None:
    """NaN and Infinity (not JSON, yet Python reads them) as null: kept,
    they would make every fleet answer holding them invalid JSON."""
    return None


def _finite(text: str) -> Optional[float]:
    """A JSON number as a float; null past a float's range (1e999)."""
    value = float(text)
    return value if math.isfinite(value) else None
