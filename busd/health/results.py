"""What a health check run produces: one :class:`CheckResult` per check,
the :class:`Fetched` data a check judged, the overall status and its HTTP
status code. Plain data, no reactor."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

import attrs

__all__ = [
    "STATUSES",
    "CheckResult",
    "Fetched",
    "overall",
    "http_status",
    "health_report",
    "iso_utc",
]

STATUSES = ("ok", "warning", "critical", "unknown")


def iso_utc(seconds: float) -> str:
    """RFC 3339 UTC with seconds, e.g. ``2026-11-26T17:27:24Z``."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class CheckResult:
    """One check's latest verdict. ``observed`` and ``limit`` are plain
    JSON values (a number, a list of numbers, an object, None)."""

    name: str
    kind: str
    level: str
    status: str
    observed: Any = None
    limit: Any = None
    reason: str = ""
    evaluated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The check as ``/health`` shows it."""
        return {
            "name": self.name,
            "kind": self.kind,
            "level": self.level,
            "status": self.status,
            "observed": self.observed,
            "limit": self.limit,
            "reason": self.reason,
            "evaluated_at": iso_utc(self.evaluated_at),
        }


@attrs.frozen
class Fetched:
    """A source's JSON (``data``), or why there is none (``error``);
    ``partial`` when an endpoint answered without all its backends."""

    data: Any = None
    error: str = ""
    partial: bool = False


def overall(results: Iterable[CheckResult]) -> str:
    """``critical`` if any check is, ``degraded`` if any is warning or
    unknown, else ``ok`` (also with no checks at all)."""
    statuses = {r.status for r in results}
    if "critical" in statuses:
        return "critical"
    if statuses & {"warning", "unknown"}:
        return "degraded"
    return "ok"


def http_status(status: str) -> int:
    """200 for ``ok`` and ``degraded``; 503 otherwise (``critical``, and
    ``starting`` before the first run)."""
    return 200 if status in ("ok", "degraded") else 503


def health_report(
    results: Sequence[CheckResult], bus: str, checked_at: Optional[float]
) -> Tuple[int, Dict[str, Any]]:
    """``/health``'s status code and body: ``starting`` (503, no checks)
    until the first run ended at ``checked_at``, then the overall status
    of ``results`` (200 for ok and degraded, 503 for critical)."""
    if checked_at is None:
        status, when = "starting", None
    else:
        status, when = overall(results), iso_utc(checked_at)
    body = {
        "status": status,
        "bus": bus,
        "checked_at": when,
        "checks": [r.to_json() for r in results],
    }
    return http_status(status), body
