"""The two helpers of the central's live calls: :class:`FanOut` (one
call per bus, bounded, under one deadline) and :class:`InFlight` (what a
part must cancel when it stops)."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from busd.config._central import BusEntry
from busd.pipeline.merge import describe
from busd.pipeline.types import ProxyResponse

__all__ = ["FanOut", "InFlight"]


class InFlight:
    """The Deferreds a part is waiting on, so :meth:`cancel_all` can end
    them when the role stops."""

    def __init__(self) -> None:
        self._running: Set["Deferred[Any]"] = set()
        #: Set while the part is stopped: a request still served (on a
        #: kept-alive connection) must start no call nobody would cancel.
        self.stopped = False

    def track(self, d: "Deferred[Any]") -> "Deferred[Any]":
        if d.called and not d.paused:
            return d
        self._running.add(d)

        def forget(result: Any) -> Any:
            self._running.discard(d)
            return result

        return d.addBoth(forget)

    def __len__(self) -> int:
        return len(self._running)

    def cancel_all(self) -> None:
        for d in list(self._running):
            d.cancel()
        self._running.clear()


class FanOut:
    """One fan-out: ``start(bus)`` for each bus, at most ``limit`` at
    once, each bounded by ``per_bus`` seconds; after ``deadline`` seconds
    the calls still running are cancelled and they and the buses not
    started yet are missing. Fires with ``(answers by bus id, reason by
    missing bus id)``; cancelling it cancels every running call."""

    def __init__(
        self,
        buses: List[BusEntry],
        start: Callable[[BusEntry], "Deferred[ProxyResponse]"],
        limit: int,
        per_bus: float,
        deadline: float,
        clock: IReactorTime,
    ):
        self._queue: Deque[BusEntry] = deque(buses)
        self._start = start
        self._limit = limit
        self._per_bus = per_bus
        self._deadline = deadline
        self._clock = clock
        self._running: Dict[str, "Deferred[ProxyResponse]"] = {}
        self.answers: Dict[str, ProxyResponse] = {}
        self.missing: Dict[str, str] = {}
        self._order = {b.id: i for i, b in enumerate(buses)}
        self._closed = False
        self._filling = False
        self._timer: Optional[IDelayedCall] = None
        self.done: Deferred[Any] = Deferred(self._cancel)

    def start(self) -> "Deferred[Any]":
        if self._queue and self._deadline > 0:
            self._timer = self._clock.callLater(self._deadline, self._expire)
        self._fill()
        return self.done

    def _fill(self) -> None:
        # A call answering at once settles inside this loop: the flag keeps
        # that from recursing (a fleet of thousands would overflow).
        if self._filling:
            return
        self._filling = True
        try:
            while (
                self._queue
                and len(self._running) < self._limit
                and not self._closed
            ):
                bus = self._queue.popleft()
                d = self._start(bus)
                if self._per_bus > 0:
                    d.addTimeout(self._per_bus, self._clock)
                self._running[bus.id] = d
                d.addBoth(self._settle, bus.id)
        finally:
            self._filling = False
        if not self._running and not self._queue:
            self._finish()

    def _settle(self, result: Any, bus_id: str) -> None:
        if self._running.pop(bus_id, None) is None or self.done.called:
            return None  # given up on already (deadline, cancel)
        if isinstance(result, Failure):
            if isinstance(result.value, TimeoutError):
                self.missing[bus_id] = f"timed out after {self._per_bus:g}s"
            else:
                self.missing[bus_id] = describe(result.value)
        else:
            self.answers[bus_id] = result
            if result.errors:  # return_error_details: data, but failed
                self.missing[bus_id] = "; ".join(result.errors)
        self._fill()
        return None  # consumed: one bus never fails the fan-out

    def _expire(self) -> None:
        self._timer = None
        self._closed = True
        for bus in self._queue:
            self.missing[bus.id] = f"not called within {self._deadline:g}s"
        self._queue.clear()
        for bus_id, d in list(self._running.items()):
            self.missing[bus_id] = f"no answer within {self._deadline:g}s"
            self._running.pop(bus_id, None)
            d.cancel()
        self._finish()

    def _finish(self) -> None:
        if self.done.called:
            return
        self._stop_timer()
        order = self._order
        answers = dict(sorted(self.answers.items(), key=lambda i: order[i[0]]))
        self.done.callback((answers, self.missing))

    def _cancel(self, _: "Deferred[Any]") -> None:
        self._closed = True
        self._stop_timer()
        self._queue.clear()
        running, self._running = self._running, {}
        for d in running.values():
            d.cancel()

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
