"""qos/ratelimit/router: reading the namespace (with JSON paths) and the
endpoint guard answering 503 / 429 with Retry-After, on a stepped clock."""

from __future__ import annotations

from typing import Any, Dict

from twisted.trial.unittest import SynchronousTestCase

from busd.config import parse_config
from busd.pipeline.types import ProxyRequest
from busd.qos.ratelimit import RateLimitConfig, client_ip
from busd.testing import JSONBackend
from tests.config._support import (
    endpoint as ep,
    problems,
    service as svc,
    table_tests,
)
from tests.helpers import B1, Gateway, body_json, config, get, header

NS = "qos/ratelimit/router"
W, E = "warning", "error"


def limited(path: str = "/a", **options: Any) -> Dict[str, Any]:
    return svc(ep(path, extra_config={NS: options}))


def parsed(path: str = "/a", **options: Any) -> RateLimitConfig:
    limit = (
        parse_config(limited(path, **options)).config.endpoints[0].rate_limit
    )
    assert limit is not None
    return limit


# fmt: off
PROBLEMS = [
    ("negative_rate", "A negative max_rate is an error.",
     limited(max_rate=-1), E, f"endpoints[0].extra_config.{NS}.max_rate",
     "must not be negative"),
    ("rate_not_number", "A max_rate that is not a number is an error.",
     limited(max_rate=[1]), E, f"endpoints[0].extra_config.{NS}.max_rate",
     "expected a number"),
    ("capacity_fraction", "A fractional capacity is an error.",
     limited(max_rate=1, capacity=1.5), E,
     f"endpoints[0].extra_config.{NS}.capacity", "expected an integer"),
    ("bad_every", "every must be a duration.",
     limited(max_rate=1, every="10"), E,
     f"endpoints[0].extra_config.{NS}.every", "missing unit"),
    ("short_every", "every under 1s is clamped to 1s, with a warning.",
     limited(max_rate=1, every="100ms"), W,
     f"endpoints[0].extra_config.{NS}.every", "1s is used"),
    ("no_strategy", "client_max_rate without a strategy is an error.",
     limited(client_max_rate=1), E,
     f"endpoints[0].extra_config.{NS}.strategy", "needs a strategy"),
    ("unknown_strategy", "An unknown strategy is an error.",
     limited(client_max_rate=1, strategy="cookie"), E,
     f"endpoints[0].extra_config.{NS}.strategy", '"cookie"'),
    ("header_needs_key", "The header strategy needs the header name.",
     limited(client_max_rate=1, strategy="header"), E,
     f"endpoints[0].extra_config.{NS}.key", "needs the header name"),
    ("param_unknown", "The param strategy needs a parameter of the path.",
     limited("/bus/{id}", client_max_rate=1, strategy="param", key="bus"),
     E, f"endpoints[0].extra_config.{NS}.key", "parameters: id"),
    ("strategy_alone", "A strategy without client_max_rate is ignored.",
     limited(max_rate=1, strategy="ip"), W,
     f"endpoints[0].extra_config.{NS}.strategy", "ignored"),
    ("no_limit", "A namespace without any rate sets no limit (warned).",
     limited(capacity=3), W, f"endpoints[0].extra_config.{NS}",
     "no limit"),
    ("unknown_key", "Unknown keys are warnings with a suggestion.",
     limited(max_rate=1, max_rates=2), W,
     f"endpoints[0].extra_config.{NS}.max_rates", "did you mean"),
    ("num_shards", "KrakenD's sharding options are ignored, with a warning.",
     limited(max_rate=1, num_shards=4), W,
     f"endpoints[0].extra_config.{NS}.num_shards", "not used by busgw"),
    ("max_clients", "max_clients must be at least 1.",
     limited(max_rate=1, max_clients=0), E,
     f"endpoints[0].extra_config.{NS}.max_clients", "at least 1"),
]
# fmt: on


class RateLimitConfigTests(SynchronousTestCase):
    locals().update(table_tests(PROBLEMS))

    def test_defaults(self) -> None:
        """capacity defaults to the rate per second (at least 1), every to
        1s; the client limit is off without client_max_rate."""
        limit = parsed(max_rate=10)
        self.assertEqual(
            (limit.rate, limit.capacity, limit.every, limit.strategy),
            (10.0, 10, 1.0, ""),
        )

    def test_every_scales_rate_and_capacity(self) -> None:
        """50 every 10m is 1/12 per second, and the default capacity is then
        1, as KrakenD computes it."""
        limit = parsed(max_rate=50, every="10m")
        self.assertAlmostEqual(limit.rate, 50 / 600)
        self.assertEqual(limit.capacity, 1)

    def test_client_options(self) -> None:
        """Client options are read; the strategy name is case-insensitive
        and weakly typed numbers are accepted."""
        limit = parsed(
            client_max_rate="2",
            client_capacity=5,
            strategy="HEADER",
            key="X-Bus",
        )
        self.assertEqual(
            (
                limit.client_rate,
                limit.client_capacity,
                limit.strategy,
                limit.key,
            ),
            (2.0, 5, "header", "X-Bus"),
        )

    def test_old_namespace_name(self) -> None:
        """The v1 long namespace name is read as qos/ratelimit/router."""
        raw = svc(
            ep(
                extra_config={
                    "github.com/devopsfaith/krakend-ratelimit/juju/router": {
                        "max_rate": 3
                    }
                }
            )
        )
        limit = parse_config(raw).config.endpoints[0].rate_limit
        self.assertIsNotNone(limit)

    def test_valid_config_is_quiet(self) -> None:
        """A complete valid block draws no problem at all."""
        raw = limited(
            "/bus/{id}",
            max_rate=100,
            capacity=100,
            client_max_rate=5,
            client_capacity=5,
            strategy="param",
            key="id",
            every="1m",
        )
        self.assertEqual(problems(raw), [])


class ClientIPTests(SynchronousTestCase):
    def test_forwarded_header(self) -> None:
        """The first valid address of the key header wins, with a port or
        IPv6 brackets removed; anything else falls back to the peer."""
        cases = {
            "203.0.113.7, 10.0.0.1": "203.0.113.7",
            "203.0.113.7:4711": "203.0.113.7",
            "[2001:db8::1]:443": "2001:db8::1",
            "2001:db8::1": "2001:db8::1",
            "not-an-ip": "10.9.9.9",
            "": "10.9.9.9",
        }
        for value, expected in cases.items():
            preq = ProxyRequest(
                method="GET",
                headers=(("X-Forwarded-For", value),),
                client_ip="10.9.9.9",
            )
            self.assertEqual(
                client_ip(preq, "X-Forwarded-For"), expected, value
            )

    def test_no_key(self) -> None:
        """Without a key header, the peer address is the client."""
        preq = ProxyRequest(method="GET", client_ip="10.9.9.9")
        self.assertEqual(client_ip(preq, ""), "10.9.9.9")


class RateLimitGuardTests(SynchronousTestCase):
    def gateway(self, path: str = "/a", **options: Any) -> Gateway:
        self.backend = JSONBackend({"/x": (200, {"ok": True})})
        endpoint = {
            "endpoint": path,
            "backend": [{"host": [B1], "url_pattern": "/x"}],
            "extra_config": {NS: options},
        }
        return Gateway(config([endpoint]), {B1: self.backend})

    def test_shared_limit_503(self) -> None:
        """Past the endpoint's capacity the answer is 503 with Retry-After
        and the JSON error body; the backend is not called."""
        gw = self.gateway(max_rate=1, capacity=2, every="10s")
        statuses = [get(self, gw, "/a")[0].code for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 503])
        response, body = get(self, gw, "/a")
        self.assertEqual(header(response, "Retry-After"), "10")
        self.assertEqual(
            body_json(body), {"error": "rate_limited", "status": 503}
        )
        self.assertEqual(len(self.backend.requests), 2)

    def test_refill_on_clock(self) -> None:
        """A refused endpoint serves again once the clock has refilled a
        token, and Retry-After counts down."""
        gw = self.gateway(max_rate=1, capacity=1, every="10s")
        self.assertEqual(get(self, gw, "/a")[0].code, 200)
        gw.clock.advance(4)
        response, _ = get(self, gw, "/a")
        self.assertEqual(header(response, "Retry-After"), "6")
        gw.clock.advance(6)
        self.assertEqual(get(self, gw, "/a")[0].code, 200)

    def test_client_limit_429_by_header(self) -> None:
        """Each header value has its own bucket; an exhausted one is 429
        while another client still passes."""
        gw = self.gateway(
            client_max_rate=1, strategy="header", key="X-Bus", every="1m"
        )
        a = {"headers": {"X-Bus": "FW-1"}}
        b = {"headers": {"X-Bus": "FW-2"}}
        self.assertEqual(get(self, gw, "/a", **a)[0].code, 200)
        response, body = get(self, gw, "/a", **a)
        self.assertEqual(response.code, 429)
        self.assertEqual(header(response, "Retry-After"), "60")
        self.assertEqual(
            body_json(body), {"error": "rate limit exceeded", "status": 429}
        )
        self.assertEqual(get(self, gw, "/a", **b)[0].code, 200)

    def test_missing_header_is_429(self) -> None:
        """With the header strategy, a request without the header is 429,
        as in KrakenD."""
        gw = self.gateway(client_max_rate=10, strategy="header", key="X-Bus")
        self.assertEqual(get(self, gw, "/a")[0].code, 429)
        self.assertEqual(self.backend.requests, [])

    def test_client_limit_by_param(self) -> None:
        """The param strategy limits each path parameter value apart."""
        gw = self.gateway(
            "/bus/{id}",
            client_max_rate=1,
            strategy="param",
            key="id",
            every="1m",
        )
        codes = [
            get(self, gw, p)[0].code for p in ("/bus/1", "/bus/1", "/bus/2")
        ]
        self.assertEqual(codes, [200, 429, 200])

    def test_client_limit_by_ip(self) -> None:
        """The ip strategy takes the address from the key header when
        valid, so two forwarded clients are limited apart."""
        gw = self.gateway(
            client_max_rate=1, strategy="ip", key="X-Forwarded-For", every="1m"
        )
        one = {"headers": {"X-Forwarded-For": "203.0.113.1"}}
        two = {"headers": {"X-Forwarded-For": "203.0.113.2"}}
        codes = [get(self, gw, "/a", **h)[0].code for h in (one, one, two)]
        self.assertEqual(codes, [200, 429, 200])

    def test_client_refusal_spends_no_shared_token(self) -> None:
        """The client check runs first: a refused client does not use up
        the endpoint's shared bucket."""
        gw = self.gateway(
            max_rate=2,
            capacity=2,
            client_max_rate=1,
            strategy="header",
            key="X-Bus",
            every="1m",
        )
        a = {"headers": {"X-Bus": "a"}}
        codes = [get(self, gw, "/a", **a)[0].code for _ in range(3)]
        self.assertEqual(codes, [200, 429, 429])
        b = {"headers": {"X-Bus": "b"}}
        self.assertEqual(get(self, gw, "/a", **b)[0].code, 200)
        c = {"headers": {"X-Bus": "c"}}
        self.assertEqual(get(self, gw, "/a", **c)[0].code, 503)
