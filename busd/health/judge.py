"""Dispatching one check to its evaluator, so that a check that throws
(a bug, a broken event source) becomes an ``unknown`` result with the
reason, logged once, and never ends the run (STYLE.md pitfall 11)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from twisted.logger import Logger

from busd.bus.interfaces import EventSource
from busd.config._health import CheckConfig
from busd.health import checks
from busd.health.results import CheckResult, Fetched

__all__ = ["judge", "judge_outbox"]

_log = Logger()


def judge(
    check: CheckConfig,
    now: float,
    fetched: Mapping[str, Optional[Fetched]],
    probed: Mapping[str, Any],
    events: Optional[EventSource],
    drift: Optional[float],
) -> CheckResult:
    """``check``'s result from this run's ``fetched`` sources (by source
    key), backend ``probed`` answers (by check name), the ``events``
    source (None without an outbox) and the central clock's ``drift``."""
    try:
        if check.kind == "backend":
            status, error, took = probed[check.name]
            return checks.evaluate_backend(
                check, now, status=status, error=error, elapsed=took
            )
        if check.kind in ("value", "freshness"):
            assert check.source is not None
            got = fetched.get(check.source.key) or Fetched(error="no data")
            if check.kind == "value":
                return checks.evaluate_value(check, now, got)
            return checks.evaluate_freshness(check, now, got)
        if check.kind == "event":
            kind = check.event_kind
            active = None if events is None else events.active(kind)
            return checks.evaluate_event(check, now, active)
        if check.kind == "clock":
            return checks.evaluate_clock(check, now, drift)
        raise ValueError(f"unknown check kind {check.kind!r}")
    except Exception as exc:
        _log.failure("health check {check} crashed", check=check.name)
        return checks.unknown(check, now, f"the check failed: {exc!r}")


def judge_outbox(now: float, events: EventSource) -> CheckResult:
    """The built-in ``outbox`` check from ``events.pressure()``."""
    try:
        pressure = events.pressure()
    except Exception as exc:
        _log.failure("the outbox pressure check crashed")
        pressure = {"level": f"error: {exc!r}"}
    return checks.evaluate_outbox(now, pressure)
