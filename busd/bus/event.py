"""An event as a device posts it: the schema, checked without a reactor.

``POST /events`` takes one JSON object::

    {"kind": "tyre_pressure", "severity": "warning",
     "occurred_at": "2025-06-01T08:30:00Z", "data": {"wheel": "rear-left"},
     "id": "optional-client-key"}

:func:`parse_event` turns the raw body into a :class:`NewEvent` or raises
:class:`EventInvalid` naming the field (``path``) and the reason, which the
route answers as a 400.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple

import attrs

from busd.config._bus import ID_PATTERN

__all__ = [
    "SEVERITIES",
    "KIND_PATTERN",
    "NewEvent",
    "EventInvalid",
    "parse_event",
    "new_event",
    "rfc3339",
    "new_id",
    "event_json",
    "kind_and_severity",
    "string_field",
]

SEVERITIES = ("info", "warning", "critical")
KIND_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_FIELDS = ("id", "kind", "severity", "occurred_at", "data")
_REQUIRED = ("kind", "severity", "occurred_at")


class EventInvalid(ValueError):
    """A refused event: ``path`` is the offending field ("" for the body)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


@attrs.frozen(kw_only=True)
class NewEvent:
    """A valid event not yet stored. ``data`` is its JSON text (compact),
    ``size`` the bytes it will take in the outbox, ``client_id`` whether
    the device chose the id (its idempotency key)."""

    id: str
    kind: str
    severity: str
    occurred_at: str
    data: str
    client_id: bool = False

    @property
    def size(self) -> int:
        return (
            len(self.data.encode("utf-8"))
            + len(self.id)
            + len(self.kind)
            + len(self.occurred_at)
            + 64  # the row's other columns, roughly
        )


def rfc3339(seconds: float) -> str:
    """``seconds`` since the epoch as UTC RFC 3339 with milliseconds."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_constant(name: str) -> Any:
    raise EventInvalid("", f"invalid JSON: {name} is not a JSON value")


def parse_event(body: bytes, max_bytes: int) -> NewEvent:
    """Check a ``POST /events`` body; raises :class:`EventInvalid`."""
    if len(body) > max_bytes:
        raise EventInvalid(
            "", f"event too large: {len(body)} bytes (max {max_bytes})"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventInvalid(
            "", f"the body is not UTF-8 (byte {exc.start})"
        ) from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise EventInvalid(
            "",
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        ) from None
    if not isinstance(raw, dict):
        raise EventInvalid("", f"expected a JSON object, got {_kind(raw)}")
    return _check(raw)


def _check(raw: Mapping[str, Any]) -> NewEvent:
    for key in raw:
        if key not in _FIELDS:
            raise EventInvalid(
                key, f"unknown field (allowed: {', '.join(_FIELDS)})"
            )
    for key in _REQUIRED:
        if raw.get(key) is None:
            raise EventInvalid(key, "missing required field")
    kind, severity = kind_and_severity(raw)
    occurred_at = string_field(raw, "occurred_at")
    _check_time(occurred_at)
    data = raw.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventInvalid("data", f"expected an object, got {_kind(data)}")
    event_id: Optional[str] = None
    if raw.get("id") is not None:
        event_id = string_field(raw, "id")
        if not ID_PATTERN.fullmatch(event_id):
            raise EventInvalid(
                "id",
                "expected 1-128 letters, digits or . _ : - (first a letter or digit)",
            )
    return NewEvent(
        id=event_id or new_id(),
        kind=kind,
        severity=severity,
        occurred_at=occurred_at,
        data=json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        client_id=event_id is not None,
    )


def new_event(
    kind: str, severity: str, data: Mapping[str, Any], now: float
) -> NewEvent:
    """An event raised inside the gateway (a health check) at ``now``;
    checked as a device's would be (raises :class:`EventInvalid`)."""
    return _check(
        {
            "kind": kind,
            "severity": severity,
            "occurred_at": rfc3339(now),
            "data": dict(data),
        }
    )


def new_id() -> str:
    """A fresh event id (random, so unique across buses and restarts)."""
    return uuid.uuid4().hex


def kind_and_severity(raw: Mapping[str, Any]) -> Tuple[str, str]:
    """An event's ``kind`` and ``severity`` (both present), checked as the
    bus and the central both check them; raises :class:`EventInvalid`."""
    kind = string_field(raw, "kind")
    if not KIND_PATTERN.fullmatch(kind):
        raise EventInvalid(
            "kind",
            "expected 1-64 letters, digits or . _ : - (first a letter or digit)",
        )
    severity = string_field(raw, "severity")
    if severity not in SEVERITIES:
        raise EventInvalid(
            "severity",
            f"expected one of {', '.join(SEVERITIES)}, got {json.dumps(severity)}",
        )
    return kind, severity


def string_field(raw: Mapping[str, Any], key: str) -> str:
    """``raw[key]`` (present), which must be a string."""
    value = raw[key]
    if not isinstance(value, str):
        raise EventInvalid(key, f"expected a string, got {_kind(value)}")
    return value


def _check_time(text: str) -> None:
    """RFC 3339: a date, ``T``, a time and an offset (``Z`` or ``+hh:mm``)."""
    if not re.fullmatch(
        r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)",
        text,
    ):
        raise EventInvalid(
            "occurred_at",
            f'expected an RFC 3339 time such as "2025-06-01T08:30:00Z", got {json.dumps(text)}',
        )
    try:
        # Python takes at most 6 fraction digits; the rest cannot matter.
        datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text.upper()))
    except ValueError as exc:
        raise EventInvalid("occurred_at", f"not a valid time: {exc}") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def event_json(row: Mapping[str, Any], bus_id: str) -> Dict[str, Any]:
    """A stored event as JSON: what the central receives and what
    :meth:`Outbox.active` lists."""
    return {
        "id": row["id"],
        "bus": bus_id,
        "seq": row["seq"],
        "kind": row["kind"],
        "severity": row["severity"],
        "occurred_at": row["occurred_at"],
        "received_at": rfc3339(row["received"]),
        "data": json.loads(row["data"]),
    }
