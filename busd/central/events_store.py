"""The event database as the reactor sees it.

Every :class:`~busd.central._eventdb.EventDB` call goes through ``run``
(in production ``deferToThreadPool`` on the events part's own one-thread
pool, so calls are serial and never block the reactor; in unit tests a
synchronous runner). Adds are *group committed*: events arriving while a
write is on disk wait and go together in the next transaction (one fsync
for all), and each caller's Deferred fires only after that commit.

The store also keeps its ``counter`` (the webhooks) told of the pending
deliveries per webhook URL, from the results of the calls that change
them (open, insert with its pruning, finish) as each fires on the reactor,
in the runner's order: so an in-memory count stays equal to the table
without the reactor ever querying it.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from busd.central._eventdb import (
    NEW,
    EventDB,
    EventQuery,
    Row,
    StoreUnavailable,
    event_json,
)
from busd.central.events_schema import IncomingEvent

__all__ = ["DeliveryCounter", "EventStore", "Runner"]

_log = Logger()
Runner = Callable[..., "Deferred[Any]"]
#: Most events written in one transaction.
_GROUP = 256
_Item = Tuple[IncomingEvent, Sequence[str], "Deferred[Tuple[str, Optional[Row]]]"]


class DeliveryCounter(Protocol):
    def counted(self, pending: Mapping[str, int]) -> None:
        """The database (re)opened with ``pending`` deliveries per URL."""

    def changed(self, delta: Mapping[str, int]) -> None:
        """A commit added (> 0) or removed (< 0) deliveries per URL."""


class EventStore:
    """Async access to one :class:`EventDB` through a serial ``run``."""

    def __init__(self, db: EventDB, run: Runner, clock: IReactorTime):
        self.db = db
        self._run = run
        self._clock = clock
        self._queue: List[_Item] = []
        self._writing = False
        self._closed = False
        self._opened = False
        #: Told of every change to the pending deliveries (None: nobody).
        self.counter: Optional[DeliveryCounter] = None

    @property
    def path(self) -> str:
        return self.db.path

    def open(self) -> "Deferred[int]":
        """Open the database; fires with the deliveries pending from
        before (a failure is retried by the next call)."""
        d = self._run(_open, self.db)

        def opened(pending: Dict[str, int]) -> int:
            self._opened = True
            if self.counter is not None:
                self.counter.counted(pending)
            return sum(pending.values())

        return d.addCallback(opened)

    def add(
        self, event: IncomingEvent, hooks: Sequence[str]
    ) -> "Deferred[Tuple[str, Optional[Row]]]":
        """Store ``event`` (with a pending delivery to each of ``hooks``);
        fires once committed with (NEW|DUPLICATE|CONFLICT, row)."""
        if self._closed:
            return fail(StoreUnavailable("the event store is stopping"))
        d: Deferred[Tuple[str, Optional[Row]]] = Deferred()
        # One row per URL: the count of NEW rows must match the table.
        self._queue.append((event, tuple(dict.fromkeys(hooks)), d))
        self._write()
        return d

    def _write(self) -> None:
        if self._writing or not self._queue:
            return
        batch, self._queue = self._queue[:_GROUP], self._queue[_GROUP:]
        self._writing = True
        d = self._call(
            self.db.insert,
            [(event, hooks) for event, hooks, _ in batch],
            self._clock.seconds(),
        )
        d.addCallbacks(
            self._inserted, self._failed, callbackArgs=(batch,), errbackArgs=(batch,)
        )
        d.addBoth(self._written)

    def _inserted(self, result: Any, batch: List[_Item]) -> None:
        outcomes, dropped = result
        if dropped:
            _log.warn(
                "event store full: {count} webhook deliveries of pruned"
                " events dropped",
                count=sum(dropped.values()),
            )
        delta = {hook: -n for hook, n in dropped.items()}
        for (_, hooks, _), (outcome, _) in zip(batch, outcomes):
            if outcome == NEW:
                for hook in hooks:
                    delta[hook] = delta.get(hook, 0) + 1
        if self.counter is not None and delta:
            # Before the callbacks: a stored event is never seen uncounted.
            self.counter.changed(delta)
        for (_, _, d), outcome in zip(batch, outcomes):
            d.callback(outcome)

    def _failed(self, failure: Failure, batch: List[_Item]) -> None:
        if not failure.check(StoreUnavailable):
            _log.failure("event store: write failed", failure)
            failure = Failure(StoreUnavailable(f"internal error: {failure.value!r}"))
        for _, _, d in batch:
            d.errback(failure)

    def _written(self, _: Any) -> None:
        self._writing = False
        if self._closed:
            queue, self._queue = self._queue, []
            for _, _, d in queue:
                d.errback(StoreUnavailable("the event store is stopping"))
        self._write()

    # -- reads and deliveries --------------------------------------------

    def list(self, query: EventQuery) -> "Deferred[List[Row]]":
        return self._call(self.db.list, query)

    def list_body(self, query: EventQuery) -> "Deferred[bytes]":
        """The ``GET /fleet/events`` body, built on the store's thread: a
        full page (1,000 events of up to 64 KiB each) is tens of MB of JSON
        to decode and encode, which must not stall the reactor."""
        return self._call(_list_body, self.db, query)

    def get(self, bus: str, event_id: str) -> "Deferred[Optional[Row]]":
        return self._call(self.db.get, bus, event_id)

    def next_delivery(self, hook: str) -> "Deferred[Optional[Row]]":
        return self._call(self.db.next_delivery, hook)

    def retry(
        self, hook: str, seq: int, attempts: int, due: float, error: str
    ) -> "Deferred[None]":
        return self._call(self.db.retry, hook, seq, attempts, due, error)

    def finish(self, hook: str, seq: int) -> "Deferred[int]":
        """End a delivery; fires with the rows deleted (0: pruned already)."""
        return self._call(self.db.finish, hook, seq).addCallback(self._finished, hook)

    def _finished(self, deleted: int, hook: str) -> int:
        if deleted and self.counter is not None:
            self.counter.changed({hook: -deleted})
        return deleted

    def run(self, fn: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        """Run other blocking work (reading a bus key file) on the same
        worker, after whatever is queued."""
        return self._call(fn, *args)

    # -- life cycle --------------------------------------------------------

    def close(self) -> "Deferred[None]":
        """Refuse new work, let the write in progress finish, close."""
        self._closed = True
        if not self._writing:
            self._written(None)
        return self._run(self.db.close)

    def _call(self, fn: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        if self._closed:
            # The worker thread may be gone: a call would never fire.
            return fail(StoreUnavailable("the event store is stopping"))
        if not self._opened:
            # A database that did not open at start is tried again first
            # (the disk may be back); the runner is serial.
            self._run(_open, self.db).addCallbacks(self._reopened, lambda f: None)
        return self._run(fn, *args)

    def _reopened(self, pending: Dict[str, int]) -> None:
        if not self._opened:
            self._opened = True
            _log.info("event store {path} is open", path=self.db.path)
            if self.counter is not None:
                self.counter.counted(pending)


def _open(db: EventDB) -> Dict[str, int]:
    """Open ``db`` (on the worker): its pending deliveries per URL."""
    db.open()
    return db.pending_by_hook()


def _list_body(db: Any, query: EventQuery) -> bytes:
    """``{"events", "count", "cursor"}`` of ``query`` (see
    :mod:`busd.central.events_list`), as compact JSON bytes."""
    rows = db.list(query)
    newest = max((r["seq"] for r in rows), default=query.after)
    body = {
        "events": [event_json(r) for r in rows],
        "count": len(rows),
        "cursor": None if newest is None else str(newest),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
