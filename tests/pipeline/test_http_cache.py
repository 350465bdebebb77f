"""qos/http-cache through the gateway: cached answers, collapsed calls,
and the namespace's config."""

from typing import Any, Dict

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase

from busd.config.load import parse_config
from busd.errors import ConfigError
from busd.pipeline.types import ProxyRequest
from busd.testing import JSONBackend
from tests.helpers import B1, Gateway, body_json, config, get

VEHICLE = {"speed": 40}


def _endpoint(cache: Any = True, method: str = "GET", **kw: Any) -> Dict[str, Any]:
    backend: Dict[str, Any] = {"host": [B1], "url_pattern": "/v", "method": method}
    if cache is not None:
        backend["extra_config"] = {"qos/http-cache": {} if cache is True else cache}
    return {"endpoint": "/x", "method": method, "backend": [backend], **kw}


class CollapseTests(SynchronousTestCase):
    def _gateway(self, **kw: Any) -> Any:
        self.backend = JSONBackend({"/v": (200, VEHICLE)}, delay=1.0)
        gw = Gateway(config([_endpoint(**kw)]), {B1: self.backend})
        self.backend.clock = gw.clock
        return gw

    def test_identical_calls_in_flight_collapse(self) -> None:
        """Two clients asking at once cause one backend call; both get the answer."""
        gw = self._gateway()
        first = gw.stub.get("http://gw/x")
        second = gw.stub.get("http://gw/x", headers={"X-Request-Id": "other"})
        gw.flush()
        gw.clock.advance(1.0)
        gw.flush()
        for d in (first, second):
            response = self.successResultOf(d)
            self.assertEqual(response.code, 200)
            self.assertEqual(body_json(self.successResultOf(response.content())), VEHICLE)
        self.assertEqual(len(self.backend.requests), 1)

    def test_without_the_namespace_no_collapse(self) -> None:
        """A backend without qos/http-cache is called once per client."""
        gw = self._gateway(cache=None)
        gw.stub.get("http://gw/x")
        gw.stub.get("http://gw/x")
        gw.flush()
        gw.clock.advance(1.0)
        gw.flush()
        self.assertEqual(len(self.backend.requests), 2)

    def test_unsafe_methods_never_collapse(self) -> None:
        """POST calls are never shared, even with qos/http-cache."""
        gw = self._gateway(method="POST")
        gw.stub.post("http://gw/x", data=b"{}")
        gw.stub.post("http://gw/x", data=b"{}")
        gw.flush()
        gw.clock.advance(1.0)
        gw.flush()
        self.assertEqual(len(self.backend.requests), 2)

    def test_cancelled_caller_leaves_the_shared_call(self) -> None:
        """One caller cancelling does not cancel the call the other waits on."""
        gw = self._gateway()
        pipeline = gw.app.pipelines[("GET", "/x")]
        first = pipeline(ProxyRequest(method="GET", path="/x"))
        second = pipeline(ProxyRequest(method="GET", path="/x"))
        gw.flush()
        first.cancel()
        self.assertIsInstance(self.failureResultOf(first).value, CancelledError)
        gw.clock.advance(1.0)
        gw.flush()
        self.assertEqual(self.successResultOf(second).data, VEHICLE)
        self.assertEqual(len(self.backend.requests), 1)


class CachingTests(SynchronousTestCase):
    def _gateway(self, headers: Any = None, **kw: Any) -> Any:
        self.backend = JSONBackend({"/v": (200, VEHICLE)}, headers=headers)
        return Gateway(config([_endpoint(**kw)]), {B1: self.backend})

    def test_cached_for_cache_ttl(self) -> None:
        """With cache_ttl the answer is reused until it expires on the clock."""
        gw = self._gateway(cache_ttl="2s")
        for _ in range(3):
            response, body = get(self, gw, "/x")
            self.assertEqual(body_json(body), VEHICLE)
        self.assertEqual(len(self.backend.requests), 1)
        gw.clock.advance(2.0)
        get(self, gw, "/x")
        self.assertEqual(len(self.backend.requests), 2)
        self.assertEqual(gw.clock.getDelayedCalls(), [])

    def test_hit_sets_no_timer(self) -> None:
        """A cache hit answers at once: no timeout timer is set for it."""
        gw = self._gateway(cache_ttl="60s")
        self.backend.delay, self.backend.clock = 1.0, gw.clock
        timers = []
        original = gw.clock.callLater

        def counting(delay, f, *args, **kw):
            if f != self.backend._finish:  # the fake backend's own delay
                timers.append(f)
            return original(delay, f, *args, **kw)

        gw.clock.callLater = counting  # type: ignore[method-assign]
        d = gw.stub.get("http://gw/x")
        gw.flush()
        self.assertEqual(len(timers), 1)  # a miss waits under a timeout
        gw.clock.advance(1.0)
        gw.flush()
        self.successResultOf(d)
        get(self, gw, "/x")
        self.assertEqual(len(timers), 1)  # a hit does not
        self.assertEqual(len(self.backend.requests), 1)

    def test_no_ttl_no_cache(self) -> None:
        """Without cache_ttl or max-age nothing is kept (calls still collapse)."""
        gw = self._gateway()
        get(self, gw, "/x")
        get(self, gw, "/x")
        self.assertEqual(len(self.backend.requests), 2)

    def test_backend_max_age_wins(self) -> None:
        """The backend's Cache-Control max-age sets the TTL."""
        gw = self._gateway(headers={"Cache-Control": "max-age=10"}, cache_ttl="1s")
        get(self, gw, "/x")
        gw.clock.advance(5)
        get(self, gw, "/x")
        self.assertEqual(len(self.backend.requests), 1)
        gw.clock.advance(5)
        get(self, gw, "/x")
        self.assertEqual(len(self.backend.requests), 2)

    def test_no_store_is_honoured(self) -> None:
        """Cache-Control: no-store keeps the answer out of the cache."""
        gw = self._gateway(headers={"Cache-Control": "no-store"}, cache_ttl="60s")
        get(self, gw, "/x")
        get(self, gw, "/x")
        self.assertEqual(len(self.backend.requests), 2)

    def test_errors_are_not_cached(self) -> None:
        """A failed backend answer is never stored."""
        self.backend = JSONBackend({"/v": (500, {"e": 1})})
        gw = Gateway(config([_endpoint(cache_ttl="60s")]), {B1: self.backend})
        for _ in range(2):
            response, _ = get(self, gw, "/x")
            self.assertEqual(response.code, 500)
        self.assertEqual(len(self.backend.requests), 2)

    def test_different_urls_are_different_entries(self) -> None:
        """Forwarded query strings split the cache."""
        gw = self._gateway(cache_ttl="60s", input_query_strings=["q"])
        get(self, gw, "/x?q=1")
        get(self, gw, "/x?q=2")
        get(self, gw, "/x?q=1")
        self.assertEqual(
            [r[1] for r in self.backend.requests], ["/v?q=1", "/v?q=2"]
        )


class ConfigTests(SynchronousTestCase):
    def test_read(self) -> None:
        """The keys are read with their defaults; unknown keys warn."""
        raw = config([_endpoint(cache={"shared": True, "max_items": 5, "x": 1})])
        result = parse_config(raw)
        cache = result.config.endpoints[0].backends[0].http_cache
        self.assertEqual((cache.shared, cache.max_items, cache.max_size), (True, 5, 10485760))
        self.assertIn("qos/http-cache.x", str(result.warnings[0]))

    def test_absent_is_none(self) -> None:
        """A backend without the namespace has no cache."""
        result = parse_config(config([_endpoint(cache=None)]))
        self.assertIsNone(result.config.endpoints[0].backends[0].http_cache)

    def test_bad_values_name_their_path(self) -> None:
        """A bound below 1 is an error naming its JSON path."""
        raw = config([_endpoint(cache={"max_size": 0})])
        err = self.assertRaises(ConfigError, parse_config, raw)
        self.assertIn(
            "endpoints[0].backend[0].extra_config.qos/http-cache.max_size", str(err)
        )
