"""An event as a bus delivers it to the central, checked without a reactor.

The bus's sender (:mod:`busd.bus.sender`) posts its stored events as
``{"id", "bus", "seq", "kind", "severity", "occurred_at", "received_at",
"data"}``. :func:`parse_bus_event` checks the same rules as the bus's own
schema (:mod:`busd.bus.event`: id, kind, severity, RFC 3339 times, an
object for ``data``) and raises :class:`~busd.bus.event.EventInvalid`
naming the field, which the central answers as a 400 (the bus then keeps
the event as rejected instead of retrying it forever).

Members the central does not know are ignored rather than refused: a
newer bus adding one must not see its events rejected for good.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Mapping, Optional

import attrs

from busd.bus.event import SEVERITIES, EventInvalid, kind_and_severity
from busd.config._bus import ID_PATTERN

__all__ = [
    "IncomingEvent",
    "parse_bus_event",
    "parse_time",
    "SEVERITY_RANK",
]

#: info < warning < critical, for ``min_severity`` and listing filters.
SEVERITY_RANK: Mapping[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
#: The largest ``seq`` (SQLite's INTEGER is 64-bit signed).
_MAX_SEQ = 2**63 - 1
_TIME = re.compile(
    r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)"
)


@attrs.frozen(kw_only=True)
class IncomingEvent:
    """A valid event from bus ``bus``; ``data`` is its canonical JSON text
    (compact, sorted keys) so a re-sent event compares equal whatever the
    member order; ``seq`` and ``bus_received_at`` are the bus's own."""

    id: str
    bus: str
    kind: str
    severity: str
    occurred_at: str
    data: str
    seq: Optional[int] = None
    bus_received_at: Optional[str] = None

    def same_content(self, other: "IncomingEvent") -> bool:
        """Whether ``other`` is this event again (a re-send, not a reuse
        of its id by another event)."""
        return (self.kind, self.severity, self.occurred_at, self.data) == (
            other.kind,
            other.severity,
            other.occurred_at,
            other.data,
        )


def parse_time(text: str) -> float:
    """An RFC 3339 time (``2025-06-01T08:30:00Z``, an offset, up to 9
    fraction digits) as seconds since the epoch; ValueError otherwise."""
    if not _TIME.fullmatch(text):
        raise ValueError(
            f'expected an RFC 3339 time such as "2025-06-01T08:30:00Z",'
            f" got {json.dumps(text)}"
        )
    # Python takes at most 6 fraction digits; the rest cannot matter.
    clean = re.sub(r"(\.\d{6})\d+", r"\1", text.upper()).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(clean).timestamp()
    except ValueError as exc:
        raise ValueError(f"not a valid time: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise EventInvalid("", f"invalid JSON: {name} is not a JSON value")


def parse_bus_event(body: bytes) -> IncomingEvent:
    """Check a ``POST /events`` body from a bus; raises
    :class:`EventInvalid` (``path`` names the field, "" for the body)."""
    try:
        raw = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise EventInvalid("", f"the body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise EventInvalid(
            "",
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        ) from None
    except RecursionError:
        raise EventInvalid("", "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise EventInvalid("", f"invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise EventInvalid("", "expected a JSON object")
    return _check(raw)


def _check(raw: Mapping[str, Any]) -> IncomingEvent:
    for key in ("id", "bus", "kind", "severity", "occurred_at"):
        if raw.get(key) is None:
            raise EventInvalid(key, "missing required field")
    event_id = _string(raw, "id")
    if not ID_PATTERN.fullmatch(event_id):
        raise EventInvalid(
            "id",
            "expected 1-128 letters, digits or . _ : - (first a letter or digit)",
        )
    bus = _string(raw, "bus")
    # The same rules as the bus's own check (busd.bus.event).
    kind, severity = kind_and_severity(raw)
    occurred_at = _time(raw, "occurred_at")
    received = _time(raw, "received_at") if raw.get("received_at") else None
    seq = raw.get("seq")
    if seq is not None and (
        isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _MAX_SEQ
    ):
        raise EventInvalid("seq", "expected an integer 0 to 2^63-1")
    data = raw.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventInvalid("data", "expected an object")
    # Stored, listed, streamed and posted to webhooks as JSON text: a
    # number past a float (1e999) would come out as a bare Infinity that
    # strict readers refuse, and a lone surrogate cannot be UTF-8 at all
    # (SQLite would fail the whole group commit with it).
    try:
        text = json.dumps(
            data, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
            allow_nan=False,
        )
        text.encode("utf-8")
    except ValueError:  # UnicodeEncodeError included
        raise EventInvalid(
            "data", "expected finite numbers and valid Unicode text"
        ) from None
    return IncomingEvent(
        id=event_id,
        bus=bus,
        kind=kind,
        severity=severity,
        occurred_at=occurred_at,
        data=text,
        seq=seq,
        bus_received_at=received,
    )


def _string(raw: Mapping[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise EventInvalid(key, "expected a string")
    return value


def _time(raw: Mapping[str, Any], key: str) -> str:
    text = _string(raw, key)
    try:
        parse_time(text)
    except ValueError as exc:
        raise EventInvalid(key, str(exc)) from None
    return text
