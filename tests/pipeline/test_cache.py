"""Tests for busd.pipeline.cache: the bounded TTL store and collapsing."""

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.config._http_cache import HttpCacheConfig
from busd.pipeline.cache import (
    BackendCache,
    CacheSet,
    Flights,
    cache_key,
    ttl_from_headers,
)
from busd.pipeline.types import ProxyResponse


def _resp(n: int) -> ProxyResponse:
    return ProxyResponse(data={"n": n})


def _done() -> Deferred:
    d: Deferred = Deferred()
    d.callback(_resp(3))
    return d


class StoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = BackendCache(self.clock, max_items=3, max_size=100)

    def test_fresh_until_ttl(self) -> None:
        """An entry is served until its TTL passes on the clock, then dropped."""
        self.store.put("k", _resp(1), 10, ttl=2.0)
        self.clock.advance(1.9)
        self.assertEqual(self.store.get("k"), _resp(1))
        self.clock.advance(0.1)
        self.assertIsNone(self.store.get("k"))
        self.assertEqual((len(self.store), self.store.size), (0, 0))

    def test_zero_ttl_not_kept(self) -> None:
        """A TTL of 0 keeps nothing."""
        self.store.put("k", _resp(1), 10, ttl=0.0)
        self.assertIsNone(self.store.get("k"))

    def test_lru_by_items(self) -> None:
        """Past max_items the least recently used entry goes."""
        for key in "abc":
            self.store.put(key, _resp(1), 1, ttl=60)
        self.store.get("a")  # b is now the oldest
        self.store.put("d", _resp(2), 1, ttl=60)
        self.assertIsNone(self.store.get("b"))
        self.assertIsNotNone(self.store.get("a"))
        self.assertEqual(len(self.store), 3)

    def test_bounded_by_size(self) -> None:
        """Past max_size bytes entries are evicted; an oversized one is not kept."""
        self.store.put("a", _resp(1), 60, ttl=60)
        self.store.put("b", _resp(2), 60, ttl=60)
        self.assertIsNone(self.store.get("a"))
        self.assertEqual(self.store.size, 60)
        self.store.put("c", _resp(3), 101, ttl=60)
        self.assertIsNone(self.store.get("c"))
        self.assertEqual(self.store.size, 60)

    def test_replacing_a_key_keeps_size_right(self) -> None:
        """Storing a key again replaces its size in the total."""
        self.store.put("a", _resp(1), 40, ttl=60)
        self.store.put("a", _resp(2), 30, ttl=60)
        self.assertEqual((self.store.size, self.store.get("a")), (30, _resp(2)))


class HeaderTests(SynchronousTestCase):
    def test_ttl_from_cache_control(self) -> None:
        """max-age wins over the default; no-store, no-cache and private forbid."""
        self.assertEqual(ttl_from_headers([b"public, max-age=30"], 1.0), 30.0)
        self.assertEqual(ttl_from_headers(None, 1.5), 1.5)
        self.assertEqual(ttl_from_headers([b"public"], 1.5), 1.5)
        for value in (b"no-store", b"max-age=9, no-cache", b"private"):
            self.assertEqual(ttl_from_headers([value], 5.0), 0.0)
        self.assertEqual(ttl_from_headers([b"s-maxage=3"], 2.0), 2.0)

    def test_key_ignores_caller_headers(self) -> None:
        """Request ids and client addresses do not split the key; others do."""
        a = cache_key("GET", "http://b/x", {b"X-Request-Id": [b"1"], b"X-Forwarded-For": [b"a"]})
        b = cache_key("GET", "http://b/x", {b"X-Request-Id": [b"2"], b"X-Forwarded-For": [b"b"]})
        c = cache_key("GET", "http://b/x", {b"Authorization": [b"t"]})
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertNotEqual(a, cache_key("GET", "http://b/y", {}))


class FlightTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.flights = Flights()
        self.started: list = []
        self.cancelled: list = []

    def start(self) -> Deferred:
        d: Deferred = Deferred(lambda _: self.cancelled.append(True))
        self.started.append(d)
        return d

    def test_identical_calls_share_one(self) -> None:
        """Two joins of one key make one call and both get its result."""
        first = self.flights.join("k", self.start)
        second = self.flights.join("k", self.start)
        self.assertEqual(len(self.started), 1)
        self.started[0].callback(_resp(7))
        self.assertEqual(self.successResultOf(first), _resp(7))
        self.assertEqual(self.successResultOf(second), _resp(7))
        self.assertEqual(len(self.flights), 0)
        self.flights.join("k", self.start)
        self.assertEqual(len(self.started), 2)  # landed: a new call

    def test_one_caller_leaving_keeps_the_call(self) -> None:
        """Cancelling one caller detaches it only; the others still get the answer."""
        first = self.flights.join("k", self.start)
        second = self.flights.join("k", self.start)
        first.cancel()
        self.failureResultOf(first, CancelledError)
        self.assertEqual(self.cancelled, [])
        self.started[0].callback(_resp(1))
        self.assertEqual(self.successResultOf(second), _resp(1))

    def test_last_caller_leaving_cancels(self) -> None:
        """When every caller has left, the shared call is cancelled."""
        first = self.flights.join("k", self.start)
        second = self.flights.join("k", self.start)
        first.cancel()
        second.cancel()
        self.assertEqual(self.cancelled, [True])
        self.failureResultOf(first, CancelledError)
        self.failureResultOf(second, CancelledError)
        self.assertEqual(len(self.flights), 0)

    def test_failure_reaches_every_caller(self) -> None:
        """A failed call fails each caller with the same error."""
        first = self.flights.join("k", self.start)
        second = self.flights.join("k", self.start)
        self.started[0].errback(ValueError("down"))
        self.failureResultOf(first, ValueError)
        self.failureResultOf(second, ValueError)

    def test_answer_at_once(self) -> None:
        """A call that answers synchronously still reaches its caller."""
        d = self.flights.join("k", _done)
        self.assertEqual(self.successResultOf(d), _resp(3))
        self.assertEqual(len(self.flights), 0)

    def test_keys_are_separate(self) -> None:
        """Different keys make different calls."""
        self.flights.join("a", self.start)
        self.flights.join("b", self.start)
        self.assertEqual(len(self.started), 2)


class CacheSetTests(SynchronousTestCase):
    def test_shared_and_own(self) -> None:
        """shared backends get one store with the largest bounds; others their own."""
        caches = CacheSet(Clock())
        s1, f1 = caches.for_backend(HttpCacheConfig(shared=True, max_items=5))
        s2, f2 = caches.for_backend(HttpCacheConfig(shared=True, max_size=50))
        own, _ = caches.for_backend(HttpCacheConfig())
        self.assertIs(s1, s2)
        self.assertIs(f1, f2)
        self.assertIsNot(own, s1)
        self.assertEqual(s1.max_items, 1000)
        self.assertEqual(s1.max_size, 10 * 1024 * 1024)
