"""The event outbox as the reactor sees it: durable adds, and the
health report's view (``active``, ``pressure``) answered from memory.

Every :class:`~busd.bus.store.Store` call goes through ``run`` (in
production ``deferToThreadPool`` on the role's own one-thread pool, so the
calls are serial and never block the reactor; in unit tests a synchronous
runner). Adds are *group committed*: requests arriving while a write is on
disk are queued and written together in the next transaction, one fsync
for all, and each caller's Deferred fires only after that commit.

An event is *active* from its storing until the central acknowledges it
(:meth:`Outbox.acknowledge`) or it is pruned from history to make room.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from busd.bus._memory import ActiveEvents
from busd.bus._memory import pressure as _pressure
from busd.bus.event import EventInvalid, NewEvent, new_event
from busd.bus.store import (
    ACCEPTED,
    CONFLICT,
    DUPLICATE,
    Counts,
    Row,
    Store,
    StoreUnavailable,
)
from busd.config._bus import OutboxConfig
from busd.errors import GatewayError

__all__ = ["Outbox", "OutboxFull", "OutboxUnavailable", "Runner"]

_log = Logger()
Runner = Callable[..., "Deferred[Any]"]
#: Most events written in one transaction.
_GROUP = 256


class OutboxFull(GatewayError):
    """No room for this event (see the policy in busd.bus.store)."""

    status = 503
    code = "outbox_full"


class OutboxUnavailable(GatewayError):
    """The outbox cannot store anything now (disk or database fault)."""

    status = 503
    code = "outbox_unavailable"


class Outbox:
    """Implements ``EventSource`` and ``EventSink``
    (:mod:`busd.bus.interfaces`) over one :class:`Store`."""

    def __init__(
        self,
        store: Store,
        run: Runner,
        clock: IReactorTime,
        limits: OutboxConfig,
        bus_id: str,
    ):
        self._store = store
        self._run = run
        self._clock = clock
        self.limits = limits
        self.bus_id = bus_id
        self._counts = Counts()
        self._active = ActiveEvents(bus_id)
        self._queue: List[Tuple[NewEvent, Deferred[str]]] = []
        self._writing = False
        self._loaded = False
        self._loading = False
        self._closed = False
        self._error: Optional[str] = None
        self._refused = 0
        self._listeners: List[Callable[[], None]] = []

    # -- EventSource / EventSink ------------------------------------------

    def active(self, kind: str) -> Sequence[Mapping[str, Any]]:
        """Unacknowledged events of ``kind``, newest first."""
        return self._active.of_kind(kind)

    def pressure(self) -> Mapping[str, Any]:
        """The outbox's fill (see :class:`~busd.bus.interfaces.EventSource`),
        plus ``held`` (what pruning may not remove, which the level is
        computed from), ``stored``, ``rejected``, ``refused`` (events turned
        away since start for lack of room) and ``error``."""
        return _pressure(
            self._counts,
            self.limits,
            self._clock.seconds(),
            error=self._error,
            refused=self._refused,
        )

    def raise_event(
        self, kind: str, severity: str, data: Mapping[str, Any]
    ) -> "Deferred[str]":
        """Store an event from inside the gateway; fires with its id once
        on disk, or fails (EventInvalid, OutboxFull, OutboxUnavailable)."""
        try:
            event = new_event(kind, severity, data, self._clock.seconds())
        except EventInvalid as exc:
            return fail(exc)
        return self.add(event)

    # -- writes ------------------------------------------------------------

    def add(self, event: NewEvent) -> "Deferred[str]":
        """Store ``event``; fires with its id once committed (the same id
        again for a duplicate id, stored once)."""
        if self._closed:
            return fail(OutboxUnavailable("the outbox is stopping"))
        d: Deferred[str] = Deferred()
        self._queue.append((event, d))
        self._write()
        return d

    def on_added(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each commit that stored new events."""
        self._listeners.append(listener)

    def _write(self) -> None:
        if self._writing or not self._queue:
            return
        batch, self._queue = self._queue[:_GROUP], self._queue[_GROUP:]
        self._writing = True
        events = [event for event, _ in batch]
        d = self._call(self._store.insert, events, self._clock.seconds())
        d.addCallbacks(
            self._inserted,
            self._failed,
            callbackArgs=(batch,),
            errbackArgs=(batch,),
        )
        d.addBoth(self._written)

    def _inserted(
        self, result: Any, batch: List[Tuple[NewEvent, "Deferred[str]"]]
    ) -> None:
        outcomes, pruned, counts = result
        self._healthy(counts)
        for victim in pruned:
            self._active.remove(victim)
        added = False
        for (event, d), (outcome, row) in zip(batch, outcomes):
            if outcome == ACCEPTED:
                self._active.add(row)
                added = True
                d.callback(event.id)
            elif outcome == DUPLICATE:
                d.callback(event.id)
            elif outcome == CONFLICT:
                d.errback(
                    GatewayError(
                        f"event id {event.id!r} is already used by a"
                        " different event",
                        status=409,
                        code="id_conflict",
                    )
                )
            else:
                self._refused += 1
                d.errback(
                    OutboxFull(
                        "the outbox is full: only critical events are accepted"
                        if event.severity != "critical"
                        else "the outbox is full",
                        headers={"Retry-After": "60"},
                    )
                )
        if added:
            self._notify()

    def _failed(
        self, failure: Failure, batch: List[Tuple[NewEvent, "Deferred[str]"]]
    ) -> None:
        reason = self._broken(failure)
        for _, d in batch:
            d.errback(OutboxUnavailable(reason, headers={"Retry-After": "30"}))

    def _written(self, _: Any) -> None:
        self._writing = False
        if self._closed:
            for _, d in self._queue:
                d.errback(OutboxUnavailable("the outbox is stopping"))
            self._queue = []
        self._write()

    # -- the sender's side ---------------------------------------------------

    def pending(self, limit: int) -> "Deferred[List[Row]]":
        """Up to ``limit`` pending rows, oldest first."""
        return self._call(self._store.pending, limit)

    def mark(
        self, delivered: Sequence[str], rejected: Sequence[Tuple[str, str]]
    ) -> "Deferred[None]":
        """Record what the central took (delivered) or refused (rejected)."""
        if not delivered and not rejected:
            return succeed(None)
        d = self._call(
            self._store.mark,
            list(delivered),
            list(rejected),
            self._clock.seconds(),
        )
        return d.addCallback(self._healthy)

    def note_failure(self, event_id: str, reason: str) -> "Deferred[None]":
        """Count a failed attempt to deliver ``event_id``."""
        return self._call(self._store.note_failure, event_id, reason)

    def acknowledge(self, event_id: str) -> "Deferred[bool]":
        """The central acknowledged ``event_id``: it is no longer active.
        Fires with False when the outbox holds no such event."""
        d = self._call(self._store.acknowledge, event_id, self._clock.seconds())

        def done(result: Tuple[bool, Counts]) -> bool:
            found, counts = result
            self._healthy(counts)
            self._active.remove(event_id)
            return found

        return d.addCallback(done)

    # -- life cycle --------------------------------------------------------

    def open(self) -> "Deferred[None]":
        """Load the database (counts, active events); a failure is logged
        and reported in :meth:`pressure`, and retried at the next call."""
        return self._call(lambda: None).addErrback(lambda _: None)

    def close(self) -> "Deferred[None]":
        """Refuse new events, let the write in progress finish, close."""
        self._closed = True
        if not self._writing:
            self._written(None)
        return self._run(self._store.close)

    # -- helpers -------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        """Run ``fn`` on the worker, after loading the database if that has
        not succeeded yet (the runner is serial, so the load goes first)."""
        if self._closed:
            # The worker thread is gone: a call now would never fire.
            return fail(OutboxUnavailable("the outbox is stopping"))
        if not self._loaded and not self._loading:
            self._loading = True
            self._run(self._store.load).addCallbacks(
                self._on_load, self._on_load_failed
            )
        return self._run(fn, *args)

    def _on_load(self, result: Tuple[List[Row], Counts]) -> None:
        rows, counts = result
        self._loading = False
        self._loaded = True
        self._active = ActiveEvents(self.bus_id)
        for row in rows:
            self._active.add(row)
        self._healthy(counts)
        _log.info(
            "event outbox {path}: {pending} pending, {stored} stored",
            path=self._store.path,
            pending=counts.pending,
            stored=counts.stored,
        )
        if counts.pending:
            self._notify()

    def _on_load_failed(self, failure: Failure) -> None:
        self._loading = False
        self._broken(failure)

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not lose an answer
                _log.failure("event outbox listener failed")

    def _healthy(self, counts: Counts) -> None:
        self._counts = counts
        if self._error is not None:
            _log.info("event outbox {path} works again", path=self._store.path)
            self._error = None

    def _broken(self, failure: Failure) -> str:
        """Log a storage fault once (until it works again); its reason."""
        if failure.check(StoreUnavailable):
            reason = str(failure.value)
            if reason != self._error:
                _log.error("event outbox unavailable: {reason}", reason=reason)
        else:
            reason = f"internal error: {failure.value!r}"
            _log.failure("event outbox failed", failure)
        self._error = reason
        return reason
