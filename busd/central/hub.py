"""The server-sent events hub: one message encoded once, written to every
subscriber, with bounded memory per subscriber.

Wire format (``text/event-stream``): each message is
``event: <kind>\\ndata: <compact JSON>\\n\\n``; a new subscriber first gets a
``retry:`` hint and the snapshot (kind ``fleet``), then live messages; a
tick every ``heartbeat`` seconds writes a ``seen`` message (each bus's
age) or, without one, a ``:`` comment, so proxies and dead peers notice
the stream.

Slow consumers: each subscriber is the push producer of its request, so
twisted.web tells it when the client's socket buffer is full
(``pauseProducing``). While paused, messages wait in the subscriber's
backlog; one whose backlog passes ``max_backlog`` bytes, or that stays
paused for ``max_paused`` seconds, is cut off (its connection aborted).
EventSource reconnects by itself and gets a fresh snapshot, so nothing is
lost that the page cannot rebuild.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, FrozenSet, List, Optional, Set

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["Hub", "Subscriber", "encode", "KIND"]

_log = Logger()

#: What a message kind (an SSE ``event:`` name) may be: it goes into the
#: stream unescaped, so no line breaks, nothing surprising.
KIND = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_COMMENT = b":\n\n"


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def encode(kind: str, data: Any) -> bytes:
    """One SSE message. Compact JSON holds no raw line break (they are
    escaped in strings), so one ``data:`` line carries it whole. Values
    JSON has no form for become strings; NaN and infinities null."""
    if not KIND.fullmatch(kind):
        raise ValueError(f"bad message kind {kind!r}")
    try:
        text = json.dumps(
            data, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
            default=str,
        )
    except ValueError:
        text = json.dumps(
            _finite(data), separators=(",", ":"), ensure_ascii=False,
            allow_nan=False, default=str,
        )
    # A lone surrogate (a bus may send "\ud800") cannot be UTF-8; it only
    # occurs inside JSON strings, where backslashreplace writes it back
    # as the same JSON escape, so the message stays valid JSON.
    data_bytes = text.encode("utf-8", "backslashreplace")
    return b"event: %s\ndata: %s\n\n" % (kind.encode("ascii"), data_bytes)


@implementer(IPushProducer)
class Subscriber:
    """One open stream on a twisted.web ``Request`` (IRequest lacks the
    producer methods); ``kinds`` None takes every kind."""

    def __init__(self, hub: "Hub", request: Any, kinds: Optional[FrozenSet[str]]):
        self.hub = hub
        self.request = request
        self.kinds = kinds
        self.paused_at: Optional[float] = None
        self.backlog: List[bytes] = []
        self.pending = 0
        self.closed = False

    def wants(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds

    def send(self, chunk: bytes) -> None:
        """Write ``chunk`` now, or keep it while the client is not reading
        (cut off past ``max_backlog``)."""
        if self.closed:
            return
        if self.paused_at is not None:
            self.backlog.append(chunk)
            self.pending += len(chunk)
            if self.pending > self.hub.max_backlog:
                self.hub.cut(self, "its backlog passed %d bytes" % self.hub.max_backlog)
            return
        self.request.write(chunk)

    # -- IPushProducer (called by twisted.web) ---------------------------

    def pauseProducing(self) -> None:
        if self.paused_at is None:
            self.paused_at = self.hub.clock.seconds()

    def resumeProducing(self) -> None:
        self.paused_at = None
        if self.backlog and not self.closed:
            data = b"".join(self.backlog)
            self.backlog, self.pending = [], 0
            self.request.write(data)

    def stopProducing(self) -> None:
        self.hub.forget(self)


class Hub:
    """Subscribers of the fleet stream and what they are sent.

    ``snapshot()`` gives the first message's data (kind ``fleet``; None:
    no snapshot), ``seen()`` the data of each tick's ``seen`` message
    (None: a comment instead). Both are called only while someone listens.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        snapshot: Callable[[], Any] = lambda: None,
        seen: Callable[[], Any] = lambda: None,
        heartbeat: float = 15.0,
        retry_ms: int = 3000,
        max_backlog: int = 4 * 1024 * 1024,
        max_paused: float = 60.0,
        max_subscribers: int = 200,
    ):
        self.clock = clock
        self.snapshot = snapshot
        self.seen = seen
        self.heartbeat = heartbeat
        self.retry_ms = retry_ms
        self.max_backlog = max_backlog
        self.max_paused = max_paused
        self.max_subscribers = max_subscribers
        self.subscribers: Set[Subscriber] = set()
        self.running = True
        self._tick_call: Optional[IDelayedCall] = None
        #: Subscribers cut off for being too slow, since start.
        self.cut_count = 0

    def publish(self, kind: str, data: Any) -> None:
        """Send one message to every subscriber that takes ``kind``.
        Never raises, never blocks; costs nothing without subscribers."""
        if not self.subscribers:
            return
        try:
            chunk = encode(kind, data)
        except Exception:
            _log.failure("stream: cannot encode a {kind!r} message", kind=kind)
            return
        for sub in list(self.subscribers):
            if sub.wants(kind):
                self._send(sub, chunk)

    def full(self) -> bool:
        """Whether a new subscriber would be refused."""
        return not self.running or len(self.subscribers) >= self.max_subscribers

    def subscribe(
        self, request: Any, kinds: Optional[FrozenSet[str]] = None
    ) -> Subscriber:
        """Start the stream on ``request`` (headers, retry hint, snapshot)
        and keep it until the client leaves, it is cut off, or stop()."""
        sub = Subscriber(self, request, kinds)
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.registerProducer(sub, True)
        if getattr(getattr(request, "channel", None), "_waitingForTransport", False):
            # The connection is already full (a pipelined request behind a
            # large answer): twisted.web only tells producers when that
            # changes, so start paused.
            sub.pauseProducing()
        self.subscribers.add(sub)
        request.notifyFinish().addBoth(lambda _: self.forget(sub))
        first = b"retry: %d\n\n" % self.retry_ms
        if sub.wants("fleet"):
            try:
                data = self.snapshot()
                if data is not None:
                    first += encode("fleet", data)
            except Exception:
                _log.failure("stream: cannot make the fleet snapshot")
        self._send(sub, first)
        if self._tick_call is None and self.running and not sub.closed:
            self._tick_call = self.clock.callLater(self.heartbeat, self._tick)
        return sub

    def forget(self, sub: Subscriber) -> None:
        """Drop ``sub`` (its client left or it was finished)."""
        sub.closed = True
        sub.backlog, sub.pending = [], 0
        self.subscribers.discard(sub)
        if not self.subscribers and self._tick_call is not None:
            if self._tick_call.active():
                self._tick_call.cancel()
            self._tick_call = None

    def cut(self, sub: Subscriber, why: str) -> None:
        """Close a slow subscriber's connection at once, dropping what it
        had not read: its client reconnects for a fresh snapshot."""
        if sub.closed:
            return
        self.cut_count += 1
        _log.info("stream: cut off a slow subscriber: {why}", why=why)
        self.forget(sub)
        _unregister(sub.request)
        transport = getattr(getattr(sub.request, "channel", None), "transport", None)
        if transport is not None:
            transport.abortConnection()

    def stop(self) -> None:
        """Finish every stream, cancel the timer, refuse new subscribers."""
        self.running = False
        for sub in list(self.subscribers):
            self.forget(sub)
            _unregister(sub.request)
            try:
                sub.request.finish()
            except Exception:  # the connection went in the meantime
                pass

    def start(self) -> None:
        self.running = True

    # -- internals ----------------------------------------------------------

    def _send(self, sub: Subscriber, chunk: bytes) -> None:
        try:
            sub.send(chunk)
        except Exception:  # one broken stream must not stop the others
            _log.failure("stream: write failed; dropping the subscriber")
            self.forget(sub)

    def _tick(self) -> None:
        self._tick_call = None
        now = self.clock.seconds()
        seen: Optional[bytes] = None
        if any(s.wants("seen") for s in self.subscribers):
            try:
                data = self.seen()
                seen = None if data is None else encode("seen", data)
            except Exception:
                _log.failure("stream: cannot make the seen message")
        for sub in list(self.subscribers):
            if sub.paused_at is not None:
                # Nothing more for a stream that is not read: only check it.
                if now - sub.paused_at >= self.max_paused:
                    self.cut(sub, "paused for %gs" % self.max_paused)
                continue
            self._send(sub, seen if seen is not None and sub.wants("seen") else _COMMENT)
        if self.subscribers and self.running:
            self._tick_call = self.clock.callLater(self.heartbeat, self._tick)


def _unregister(request: Any) -> None:
    try:
        request.unregisterProducer()
    except Exception:
        pass
