"""What the bus role's parts need from each other.

The health checks read events and the outbox's pressure, and raise an
event when a check turns critical; the outbox implements both protocols.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from twisted.internet.defer import Deferred

__all__ = ["EventSource", "EventSink"]


class EventSource(Protocol):
    """Events as the health checks see them (answered from memory)."""

    def active(self, kind: str) -> Sequence[Mapping[str, Any]]:
        """The active (not yet cleared or acknowledged) events of ``kind``,
        newest first, each as the event's JSON object."""

    def pressure(self) -> Mapping[str, Any]:
        """The outbox's fill: ``{"pending": int, "bytes": int,
        "max_events": int, "max_bytes": int, "level": "ok" | "warning" |
        "critical", "oldest_pending_age": float | None}``."""


class EventSink(Protocol):
    """Somewhere to raise an event from inside the gateway."""

    def raise_event(
        self, kind: str, severity: str, data: Mapping[str, Any]
    ) -> "Deferred[str]":
        """Store an event durably (as a device's ``POST /events`` would);
        fires with its id once it is on disk."""
