"""The central's clock, as its HTTP ``Date`` headers show it.

A Pi has no real-time clock: until NTP syncs, it may believe it is 1970
or the day its image was built. The bus cannot ask the central's clock
directly, but every request the central sends (a push to an inbound
topic, an authenticated poll of ``/health``) and every answer it gives
(the event sender's deliveries) may carry a ``Date`` header.
:class:`CentralClock` keeps the latest one as a drift, which the
``clock`` health check compares with ``max_drift``.

``Date`` has a one-second resolution and travels with the network's
latency, so drifts of a second or two are noise: configure ``max_drift``
well above that (tens of seconds).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Optional

from twisted.internet.interfaces import IReactorTime

__all__ = ["CentralClock"]


class CentralClock:
    """The local clock's offset from the central's, from the last
    ``Date`` header observed (shared by the bus role's parts)."""

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._drift: Optional[float] = None
        self.observed_at: Optional[float] = None

    def observe(self, date: Optional[str]) -> bool:
        """Note an HTTP ``Date`` header value (RFC 9110 IMF-fixdate or an
        obsolete form) received just now from the central; returns
        whether it could be read. Unreadable values are ignored."""
        if not date:
            return False
        try:
            moment = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return False
        if moment.tzinfo is None:
            return False  # "-0000": no reliable zone
        now = self._clock.seconds()
        self._drift = now - moment.timestamp()
        self.observed_at = now
        return True

    def drift(self) -> Optional[float]:
        """Local minus central seconds (positive: the bus is ahead), or
        None before any Date header was seen."""
        return self._drift
