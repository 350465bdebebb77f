"""Backend answer cache and collapsing of identical calls in flight.

For a backend with ``extra_config."qos/http-cache"``:

* **Collapsing.** A GET (or HEAD) identical to one still in flight (same
  method, URL and forwarded headers, request ids and client addresses
  aside) waits for that call instead of making its own: a weak device
  service answers 100 simultaneous clients once. Each caller gets the
  shared answer; a caller that goes away (timeout, client gone) only stops
  waiting, and the call is cancelled when its last caller leaves.
* **Caching.** A complete answer is kept for the backend's
  ``Cache-Control: max-age``, or else the endpoint's ``cache_ttl``; never
  with ``no-store``, ``no-cache`` or ``private``, nor when the TTL is 0.
  Entries expire by ``clock`` and the cache is a bounded LRU
  (``max_items`` entries and ``max_size`` bytes of backend bodies).

Shared answers are safe because every later stage is pure: decode,
reshape, merge and encode build new objects and never mutate their input.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Tuple

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from busd.config._http_cache import HttpCacheConfig
from busd.pipeline.types import ProxyResponse

__all__ = [
    "BackendCache",
    "CacheSet",
    "Flights",
    "cache_key",
    "ttl_from_headers",
    "COLLAPSIBLE_METHODS",
    "PER_CALLER_HEADERS",
]

#: Safe methods: sharing one answer among callers changes nothing.
COLLAPSIBLE_METHODS = frozenset({"GET", "HEAD"})
#: Headers that describe the caller rather than the resource; left out of
#: the key (the shared call carries the first caller's values).
PER_CALLER_HEADERS = frozenset({b"X-Request-Id", b"X-Forwarded-For"})
_MAX_AGE = re.compile(rb"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.I)
_NO_CACHE = re.compile(rb"(?:^|[,\s])(?:no-store|no-cache|private)\b", re.I)


def cache_key(
    method: str, url: str, headers: Mapping[bytes, List[bytes]]
) -> Tuple[Hashable, ...]:
    """What makes two backend calls identical."""
    kept = tuple(
        sorted(
            (name, tuple(values))
            for name, values in headers.items()
            if name not in PER_CALLER_HEADERS
        )
    )
    return (method, url, kept)


def ttl_from_headers(values: Optional[List[bytes]], default: float) -> float:
    """Seconds to keep an answer given its ``Cache-Control`` values:
    0 when it forbids caching, its ``max-age`` when given, else
    ``default`` (the endpoint's ``cache_ttl``)."""
    if not values:
        return default
    text = b",".join(values)
    if _NO_CACHE.search(text):
        return 0.0
    m = _MAX_AGE.search(text)
    return float(m.group(1)) if m else default


class BackendCache:
    """A bounded LRU of answers with a deadline each, read on ``clock``."""

    def __init__(self, clock: IReactorTime, max_items: int, max_size: int):
        self._clock = clock
        self.max_items = max_items
        self.max_size = max_size
        self.size = 0
        self._entries: "OrderedDict[Hashable, Tuple[float, int, ProxyResponse]]" = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Optional[ProxyResponse]:
        """The fresh answer for ``key``, or None (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, size, value = entry
        if self._clock.seconds() >= deadline:
            del self._entries[key]
            self.size -= size
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: ProxyResponse, size: int, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds, evicting the least recently
        used entries beyond the bounds; one larger than ``max_size`` alone
        is not kept."""
        if ttl <= 0 or size > self.max_size:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[1]
        self._entries[key] = (self._clock.seconds() + ttl, size, value)
        self.size += size
        while len(self._entries) > self.max_items or self.size > self.max_size:
            _, (_, evicted, _) = self._entries.popitem(last=False)
            self.size -= evicted


class _Flight:
    """One shared call and the callers waiting for it."""

    def __init__(self) -> None:
        self.call: Optional["Deferred[Any]"] = None
        self.waiters: List["Deferred[Any]"] = []


class Flights:
    """Identical calls in flight, collapsed into one."""

    def __init__(self) -> None:
        self._flights: Dict[Hashable, _Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: Hashable, start: Callable[[], "Deferred[Any]"]) -> "Deferred[Any]":
        """A Deferred for the result of the call for ``key``: the one in
        flight, or a new one made with ``start()``. Cancelling it detaches
        this caller only; the call itself is cancelled with its last one."""
        flight = self._flights.get(key)
        if flight is not None:
            return self._wait(key, flight)
        flight = _Flight()
        self._flights[key] = flight
        # The waiter first: the call may have its answer at once.
        waiter = self._wait(key, flight)
        flight.call = maybeDeferred(start)
        flight.call.addBoth(self._land, key, flight)
        return waiter

    def _wait(self, key: Hashable, flight: _Flight) -> "Deferred[Any]":
        waiter: Deferred[Any] = Deferred(lambda d: self._leave(key, flight, d))
        flight.waiters.append(waiter)
        return waiter

    def _leave(self, key: Hashable, flight: _Flight, waiter: "Deferred[Any]") -> None:
        # The canceller: Deferred.cancel errbacks the waiter with
        # CancelledError right after this returns.
        if waiter in flight.waiters:
            flight.waiters.remove(waiter)
        if not flight.waiters and self._flights.get(key) is flight:
            del self._flights[key]
            if flight.call is not None:
                flight.call.cancel()

    def _land(self, result: Any, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        waiters, flight.waiters = flight.waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        # Each waiter got the outcome; a failure with nobody left waiting
        # (cancelled with its last caller) needs no report.
        return None


class CacheSet:
    """The caches of one config generation: one per backend, and the one
    every ``shared`` backend uses (bounded by the largest bounds given)."""

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._shared: Optional[Tuple[BackendCache, Flights]] = None

    def for_backend(self, config: HttpCacheConfig) -> Tuple[BackendCache, Flights]:
        """The store and the in-flight calls for a backend with ``config``."""
        if not config.shared:
            store = BackendCache(self._clock, config.max_items, config.max_size)
            return store, Flights()
        if self._shared is None:
            store = BackendCache(self._clock, config.max_items, config.max_size)
            self._shared = (store, Flights())
        store = self._shared[0]
        store.max_items = max(store.max_items, config.max_items)
        store.max_size = max(store.max_size, config.max_size)
        return self._shared
