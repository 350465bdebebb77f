"""Pure health check evaluators: fetched data, time and events in, a
:class:`CheckResult` out. No reactor, no I/O, no clock of their own, so
every rule is table-tested.

A check that holds is ``ok``; one that fails takes its configured
``level`` (``warning`` or ``critical``); one that cannot be judged (its
source is down, the value is missing or not a number) is ``unknown``.
:func:`busd.health.results.overall` combines them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from busd.config._health import CheckConfig
from busd.health._data import extract, is_number, parse_timestamp, same_json
from busd.health.results import CheckResult, Fetched, iso_utc

__all__ = [
    "unknown",
    "evaluate_backend",
    "evaluate_value",
    "evaluate_freshness",
    "evaluate_event",
    "evaluate_clock",
    "evaluate_outbox",
]

_SHOWN_FAILURES = 2


def _result(
    check: CheckConfig, now: float, status: str, **kw: Any
) -> CheckResult:
    return CheckResult(
        name=check.name,
        kind=check.kind,
        level=check.level,
        status=status,
        evaluated_at=now,
        **kw,
    )


def _judged(
    check: CheckConfig,
    now: float,
    failed: bool,
    reason: str,
    observed: Any = None,
    limit: Any = None,
) -> CheckResult:
    """``ok``, or the check's level when it ``failed``."""
    status = check.level if failed else "ok"
    return _result(
        check, now, status, observed=observed, limit=limit, reason=reason
    )


def unknown(
    check: CheckConfig, now: float, reason: str, **kw: Any
) -> CheckResult:
    """``check`` could not be judged, because of ``reason``."""
    return _result(check, now, "unknown", reason=reason, **kw)


def _source_problem(
    check: CheckConfig, now: float, got: Fetched
) -> Optional[CheckResult]:
    if got.error:
        return unknown(check, now, f"source unavailable: {got.error}")
    return None


def _missing(check: CheckConfig, now: float, got: Fetched) -> CheckResult:
    why = f"no value at {check.path}"
    if got.partial:
        why += " (the source answered without all its backends)"
    return unknown(check, now, why)


def _summary(failures: Sequence[str]) -> str:
    text = "; ".join(failures[:_SHOWN_FAILURES])
    more = len(failures) - _SHOWN_FAILURES
    return text + (f" (and {more} more)" if more > 0 else "")


def evaluate_backend(
    check: CheckConfig,
    now: float,
    *,
    status: Optional[int] = None,
    error: str = "",
    elapsed: Optional[float] = None,
) -> CheckResult:
    """A device service answered ``status`` (or failed with ``error``,
    such as a timeout) after ``elapsed`` seconds."""
    limit = {"status": check.expect_status, "timeout_s": check.timeout}
    took = round(elapsed, 3) if elapsed is not None else None
    if error or status is None:
        why = f"{check.url}: {error or 'no answer'}"
        return _judged(check, now, True, why, None, limit)
    observed = {"status": status, "elapsed_s": took}
    failed = status != check.expect_status
    why = f"{check.url} answered {status}"
    if failed:
        why += f", expected {check.expect_status}"
    return _judged(check, now, failed, why, observed, limit)


def _value_limit(check: CheckConfig) -> dict[str, Any]:
    limit: dict[str, Any] = {}
    if check.minimum is not None:
        limit["min"] = check.minimum
    if check.maximum is not None:
        limit["max"] = check.maximum
    if check.allowed is not None:
        limit["allowed"] = list(check.allowed)
    return limit


def _value_problem(
    check: CheckConfig, where: str, value: Any
) -> Tuple[str, str]:
    """("", "") when ``value`` holds; ("fail", why) or ("unknown", why)."""
    if check.allowed is not None and not any(
        same_json(value, a) for a in check.allowed
    ):
        return "fail", f"{where} = {value!r} is not one of the allowed values"
    if check.minimum is None and check.maximum is None:
        return "", ""
    if not is_number(value):
        return "unknown", f"{where} is not a number ({value!r})"
    if check.minimum is not None and value < check.minimum:
        return "fail", f"{where} = {value} is below min {check.minimum}"
    if check.maximum is not None and value > check.maximum:
        return "fail", f"{where} = {value} is above max {check.maximum}"
    return "", ""


def evaluate_value(check: CheckConfig, now: float, got: Fetched) -> CheckResult:
    """The value(s) at ``check.path`` are within min/max and in allowed;
    with ``*`` in the path every value must hold."""
    bad = _source_problem(check, now, got)
    if bad is not None:
        return bad
    found = extract(got.data, check.path)
    if not found:
        return _missing(check, now, got)
    many = "*" in check.path.split(".")
    observed = [v for _, v in found] if many else found[0][1]
    limit = _value_limit(check)
    failures: List[str] = []
    unsure: List[str] = []
    for where, value in found:
        verdict, why = _value_problem(check, where, value)
        if verdict == "fail":
            failures.append(why)
        elif verdict == "unknown":
            unsure.append(why)
    if unsure and not failures:
        return unknown(
            check, now, _summary(unsure), observed=observed, limit=limit
        )
    why = _summary(failures) if failures else "within limits"
    return _judged(check, now, bool(failures), why, observed, limit)


def evaluate_freshness(
    check: CheckConfig, now: float, got: Fetched
) -> CheckResult:
    """The timestamp(s) at ``check.path`` are at most ``max_age`` old; with
    ``*`` the oldest counts. A timestamp in the future is fresh."""
    bad = _source_problem(check, now, got)
    if bad is not None:
        return bad
    found = extract(got.data, check.path)
    if not found:
        return _missing(check, now, got)
    limit = {"max_age_s": check.max_age}
    oldest: Optional[Tuple[float, str]] = None
    for where, value in found:
        stamp = parse_timestamp(value)
        if stamp is None:
            return unknown(
                check,
                now,
                f"{where} is not a timestamp ({value!r})",
                limit=limit,
            )
        age = now - stamp
        if oldest is None or age > oldest[0]:
            oldest = (age, where)
    assert oldest is not None
    age, where = oldest
    observed = {"age_s": round(age, 1)}
    failed = age > check.max_age
    why = f"{where} is {max(age, 0.0):.1f}s old"
    if failed:
        why += f" (max {check.max_age:g}s)"
    return _judged(check, now, failed, why, observed, limit)


def evaluate_event(
    check: CheckConfig,
    now: float,
    events: Optional[Sequence[Mapping[str, Any]]],
) -> CheckResult:
    """No event of ``check.event_kind`` is active; ``events`` is None when
    this gateway keeps no events (then the check is unknown)."""
    kind = check.event_kind
    if events is None:
        return unknown(check, now, "no event outbox is configured")
    if not events:
        return _judged(check, now, False, f"no active {kind} event", 0)
    newest = events[0]
    why = (
        f"{len(events)} active {kind} event(s); newest"
        f" {newest.get('id', '?')} at {newest.get('occurred_at', '?')}"
    )
    return _judged(check, now, True, why, len(events))


def evaluate_clock(
    check: CheckConfig, now: float, drift: Optional[float]
) -> CheckResult:
    """The system clock reads at least ``min_year`` and, once a Date header
    of the central has been seen (``drift`` = local minus central
    seconds), is within ``max_drift`` of it."""
    year = datetime.fromtimestamp(now, tz=timezone.utc).year
    observed = {
        "now": iso_utc(now),
        "drift_s": None if drift is None else round(drift, 1),
    }
    limit = {"min_year": check.min_year, "max_drift_s": check.max_drift}
    allowed = check.max_drift
    failed = True
    if year < check.min_year:
        why = (
            f"the clock reads {year}, before {check.min_year}:"
            " it was never synchronised"
        )
    elif allowed is not None and drift is not None and abs(drift) > allowed:
        side = "ahead of" if drift > 0 else "behind"
        why = (
            f"the clock is {abs(drift):.1f}s {side} the central's"
            f" (max {allowed:g}s)"
        )
    else:
        failed = False
        why = "the clock looks synchronised"
        if allowed is not None and drift is None:
            why = "year looks right; no Date header from the central yet"
    return _judged(check, now, failed, why, observed, limit)


_OUTBOX = CheckConfig(name="outbox", kind="outbox", level="critical")


def evaluate_outbox(now: float, pressure: Mapping[str, Any]) -> CheckResult:
    """The built-in check of the event outbox's fill, at the outbox's own
    level (``ok``/``warning``/``critical``)."""
    level = pressure.get("level")
    observed = {
        "pending": pressure.get("pending"),
        "bytes": pressure.get("bytes"),
        "oldest_pending_age_s": pressure.get("oldest_pending_age"),
    }
    limit = {
        "max_events": pressure.get("max_events"),
        "max_bytes": pressure.get("max_bytes"),
    }
    if level not in ("ok", "warning", "critical"):
        return unknown(
            _OUTBOX,
            now,
            f"unexpected outbox level {level!r}",
            observed=observed,
            limit=limit,
        )
    why = f"{observed['pending']} event(s) waiting for the central"
    if pressure.get("error"):
        why += f"; the outbox fails: {pressure['error']}"
    return _result(
        _OUTBOX, now, str(level), observed=observed, limit=limit, reason=why
    )
