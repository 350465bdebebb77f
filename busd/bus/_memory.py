"""What the outbox answers from memory, so the health report never waits
for the disk: the active (unacknowledged) events and the pressure."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from busd.bus._sql import Counts
from busd.bus.event import event_json
from busd.config._bus import OutboxConfig

__all__ = ["ActiveEvents", "pressure"]

#: Fill (of the soft caps) from which pressure is a warning.
_WARNING_FILL = 0.8


def pressure(
    c: Counts,
    limits: OutboxConfig,
    now: float,
    *,
    error: Optional[str] = None,
    refused: int = 0,
) -> Dict[str, Any]:
    """The ``EventSource.pressure`` mapping for counts ``c`` at ``now``.
    The level comes from ``held`` (what pruning may not remove) against
    the soft caps: ``ok``, ``warning`` from 80%, ``critical`` when full
    (only critical events are taken) or when the disk fails (``error``)."""
    fill = max(c.held / limits.max_events, c.held_bytes / limits.max_bytes)
    if error is not None or fill >= 1.0:
        level = "critical"
    elif fill >= _WARNING_FILL:
        level = "warning"
    else:
        level = "ok"
    age = None
    if c.oldest_pending is not None:
        age = max(0.0, now - c.oldest_pending)
    return {
        "pending": c.pending,
        "bytes": c.pending_bytes,
        "max_events": limits.max_events,
        "max_bytes": limits.max_bytes,
        "level": level,
        "oldest_pending_age": age,
        "held": c.held,
        "held_bytes": c.held_bytes,
        "stored": c.stored,
        "stored_bytes": c.stored_bytes,
        "rejected": c.rejected,
        "refused": refused,
        "error": error,
    }


class ActiveEvents:
    """Unacknowledged events by kind, in the order they were stored; kept
    in step with the database by the outbox after each transaction. Its
    size is bounded by the outbox's (every entry is a row on disk)."""

    def __init__(self, bus_id: str):
        self._bus_id = bus_id
        self._by_kind: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self._kind_of: Dict[str, str] = {}

    def of_kind(self, kind: str) -> List[Mapping[str, Any]]:
        """The active events of ``kind`` as JSON, newest first."""
        return list(reversed(self._by_kind.get(kind, {}).values()))

    def add(self, row: Mapping[str, Any]) -> None:
        """A stored row (ignored once acknowledged)."""
        if row["acked"] is not None:
            return
        self._by_kind.setdefault(row["kind"], {})[row["id"]] = event_json(
            row, self._bus_id
        )
        self._kind_of[row["id"]] = row["kind"]

    def remove(self, event_id: str) -> None:
        """Acknowledged or pruned: no longer active."""
        kind = self._kind_of.pop(event_id, None)
        if kind is None:
            return
        by_id = self._by_kind[kind]
        del by_id[event_id]
        if not by_id:
            del self._by_kind[kind]
