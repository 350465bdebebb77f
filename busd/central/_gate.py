"""A first-come, first-served bound on concurrent work (the poller's
``poll.concurrency``), iterative so that holders finishing synchronously
cannot recurse through a long queue."""

from __future__ import annotations

from collections import deque
from typing import Deque

from twisted.internet.defer import Deferred, succeed

__all__ = ["Gate"]


class Gate:
    """At most ``limit`` holders at once; the others wait in arrival
    order. A waiter's Deferred may be cancelled (it leaves the queue)."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.active = 0
        self._waiting: Deque["Deferred[None]"] = deque()
        self._admitting = False

    def acquire(self) -> "Deferred[None]":
        if self.active < self.limit and not self._waiting:
            self.active += 1
            return succeed(None)
        d: Deferred[None] = Deferred(self._forget)
        self._waiting.append(d)
        return d

    def release(self) -> None:
        self.active -= 1
        self._admit()

    def set_limit(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._admit()

    @property
    def waiting(self) -> int:
        """How many wait for a slot now."""
        return len(self._waiting)

    def clear(self) -> None:
        """Cancel every waiter."""
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.cancel()

    def _forget(self, d: "Deferred[None]") -> None:
        if d in self._waiting:
            self._waiting.remove(d)

    def _admit(self) -> None:
        # A holder admitted here may finish (and release) synchronously:
        # that release must not recurse into this loop, or a long queue of
        # buses failing at once would exhaust the stack.
        if self._admitting:
            return
        self._admitting = True
        try:
            while self._waiting and self.active < self.limit:
                self.active += 1
                self._waiting.popleft().callback(None)
        finally:
            self._admitting = False
