"""The central event database's SQL and row shapes: the schema, the
listing query, and a row as the central shows it (see
:mod:`busd.central._eventdb` for the database itself)."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

import attrs

from busd.bus.event import rfc3339

__all__ = [
    "SCHEMA",
    "COLUMNS",
    "NEW",
    "DUPLICATE",
    "CONFLICT",
    "Row",
    "EventQuery",
    "event_json",
]

NEW, DUPLICATE, CONFLICT = "new", "duplicate", "conflict"
Row = Dict[str, Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    bus TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    bus_seq INTEGER,
    bus_received_at TEXT,
    received REAL NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (bus, id)
);
CREATE INDEX IF NOT EXISTS events_by_bus ON events (bus, seq);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received);
CREATE TABLE IF NOT EXISTS deliveries (
    hook TEXT NOT NULL,
    event_seq INTEGER NOT NULL,
    created REAL NOT NULL,
    due REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (hook, event_seq)
);
"""
COLUMNS = (
    "seq, bus, id, kind, severity, occurred_at, bus_seq, bus_received_at,"
    " received, data"
)


@attrs.frozen(kw_only=True)
class EventQuery:
    """A listing: filters (None: any), ``min_rank`` the least severity
    rank, ``since`` a central receive time, ``after`` a cursor (seq)."""

    bus: Optional[str] = None
    kind: Optional[str] = None
    min_rank: int = 0
    since: Optional[float] = None
    after: Optional[int] = None
    limit: int = 100
    ascending: bool = False


def event_json(row: Row) -> Dict[str, Any]:
    """A stored event as the central shows it (listing, stream, webhooks):
    ``seq`` and ``bus_received_at`` are the bus's, ``received_at`` the
    central's, ``cursor`` its place in the central's arrival order."""
    return {
        "id": row["id"],
        "bus": row["bus"],
        "seq": row["bus_seq"],
        "kind": row["kind"],
        "severity": row["severity"],
        "occurred_at": row["occurred_at"],
        "received_at": rfc3339(row["received"]),
        "bus_received_at": row["bus_received_at"],
        "data": json.loads(row["data"]),
        "cursor": str(row["seq"]),
    }
