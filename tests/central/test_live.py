"""busd.central.live: ``busgw/fleet`` backends, the pass-through route and
the ``busgw/fleet`` config reader, with a fake client and a Clock."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import attrs
import jwt
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from busd.app import GatewayApp
from busd.auth.sign import generate_key
from busd.central.live import LivePart
from busd.central.passthrough import MAX_REQUEST_BYTES, check_rest
from busd.central.tokens import BusTokens
from busd.config._central import BusEntry, CentralRoleConfig, SigningConfig
from busd.config.load import parse_config
from busd.config.model import GatewayConfig
from busd.errors import ConfigError, GatewayError

BUSES = (
    BusEntry(id="b1", url="http://bus1:81", labels={"line": "A"}),
    BusEntry(id="b2", url="http://bus2:82", labels={"line": "B"}),
    BusEntry(id="b3", url="http://bus3:83", labels={"line": "A"}),
)


class FakeResponse:
    """What treq's unbuffered response offers read_capped."""

    def __init__(self, code: int, body: bytes, content_type: str):
        self.code = code
        self.length = len(body)
        self.headers = Headers({b"Content-Type": [content_type.encode()]})
        self._body = body

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(_Transport())
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))


class _Transport:
    def stopProducing(self) -> None:
        pass


@attrs.define
class Call:
    method: str
    url: str
    headers: Headers
    data: Any
    d: "Deferred[Any]"
    cancelled: bool = False

    def header(self, name: str) -> Optional[str]:
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode() if values else None

    def answer(
        self, body: Any, code: int = 200, content_type: str = "application/json"
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.d.callback(FakeResponse(code, raw, content_type))


class FakeClient:
    """Records every request; each answers when the test says so."""

    def __init__(self) -> None:
        self.calls: List[Call] = []
        self.open = 0
        self.most_open = 0

    def request(
        self,
        method: str,
        url: Any,
        *,
        headers: Any = None,
        data: Any = None,
        unbuffered: bool = False,
    ) -> "Deferred[Any]":
        def closed(result: Any) -> Any:
            self.open -= 1
            return result

        def cancel(_: Any) -> None:
            call.cancelled = True

        d: Deferred[Any] = Deferred(cancel)
        d.addBoth(closed)
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        text = url.decode() if isinstance(url, bytes) else url
        call = Call(method, text, headers, data, d)
        self.calls.append(call)
        return d

    def by_host(self, host: str) -> Call:
        return next(c for c in self.calls if f"//{host}" in c.url)


class FakeRole:
    """The role attributes the live part reads."""

    def __init__(self, config: CentralRoleConfig, client: Any, clock: Clock):
        self.config = config
        self.client = client
        self.clock = clock
        self.tokens: Optional[BusTokens] = None
        self.backend_factory: Any = None

    @property
    def fleet(self) -> Tuple[BusEntry, ...]:
        return self.config.fleet


def central_config(
    case: SynchronousTestCase, backend: Dict[str, Any], **endpoint: Any
) -> GatewayConfig:
    """A central's config with one endpoint over ``backend``."""
    raw = {
        "version": 3,
        "extra_config": {"busgw/central": {"state_dir": case.mktemp()}},
        "endpoints": [
            {"endpoint": "/live/{x}", "backend": [backend], **endpoint}
        ],
    }
    config = parse_config(raw).config
    assert config.central is not None
    central = attrs.evolve(config.central, fleet=BUSES)
    return attrs.evolve(config, central=central)


class Harness:
    """A GatewayApp whose fleet backends are the live part's."""

    def __init__(self, case: SynchronousTestCase, config: GatewayConfig):
        assert config.central is not None
        self.clock = Clock()
        self.client = FakeClient()
        self.role = FakeRole(config.central, self.client, self.clock)
        self.part = LivePart(self.role)  # type: ignore[arg-type]
        self.app = GatewayApp(
            config,
            self.client,
            self.clock,
            backend_factory=self.part.backend_factory,
        )
        self.part.install(self.app)
        self.part.start()
        self.stub = StubTreq(self.app.resource())

    def request(self, path: str, method: str = "GET", **kw: Any) -> Any:
        d = self.stub.request(method, "http://central" + path, **kw)
        self.stub.flush()
        return d

    def done(self, case: SynchronousTestCase, d: Any) -> Tuple[Any, Any]:
        self.stub.flush()
        response = case.successResultOf(d)
        body = case.successResultOf(response.content())
        return response, body


def _json(body: bytes) -> Any:
    return json.loads(body)


class FleetBackendTests(SynchronousTestCase):
    def test_every_bus_called_with_params(self) -> None:
        """Each bus gets the url_pattern with the endpoint's params filled in
        and the result keys each bus's data by id."""
        h = Harness(self, central_config(self, {"url_pattern": "/s/{x}",
                                                "extra_config": {"busgw/fleet": True}}))
        d = h.request("/live/abc")
        self.assertEqual(
            sorted(c.url for c in h.client.calls),
            ["http://bus1:81/s/abc", "http://bus2:82/s/abc", "http://bus3:83/s/abc"],
        )
        for call in h.client.calls:
            call.answer({"host": call.url.split("/")[2]})
        response, body = h.done(self, d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("X-Krakend-Completed"), ["true"])
        self.assertEqual(
            _json(body),
            {
                "buses": {
                    "b1": {"host": "bus1:81"},
                    "b2": {"host": "bus2:82"},
                    "b3": {"host": "bus3:83"},
                },
                "missing": [],
            },
        )

    def test_concurrency_bound(self) -> None:
        """With concurrency 2 no more than two buses are called at once, and
        every bus is called in the end."""
        fleet = tuple(BusEntry(id=f"b{i:02d}", url=f"http://bus{i}:80") for i in range(9))
        config = central_config(
            self, {"url_pattern": "/s", "extra_config": {"busgw/fleet": {"concurrency": 2}}}
        )
        assert config.central is not None
        config = attrs.evolve(config, central=attrs.evolve(config.central, fleet=fleet))
        h = Harness(self, config)
        d = h.request("/live/x")
        answered = 0
        while answered < len(h.client.calls):
            self.assertLessEqual(h.client.open, 2)
            h.client.calls[answered].answer({"n": answered})
            answered += 1
        response, body = h.done(self, d)
        self.assertEqual(h.client.most_open, 2)
        self.assertEqual(len(h.client.calls), 9)
        self.assertEqual(len(_json(body)["buses"]), 9)

    def test_default_concurrency_is_live_concurrency(self) -> None:
        """Without its own bound a fleet backend uses the central's
        live_concurrency."""
        config = central_config(self, {"url_pattern": "/s", "extra_config": {"busgw/fleet": True}})
        assert config.central is not None
        config = attrs.evolve(
            config, central=attrs.evolve(config.central, live_concurrency=1)
        )
        h = Harness(self, config)
        h.request("/live/x")
        self.assertEqual(len(h.client.calls), 1)
        h.client.calls[0].answer({})
        self.assertEqual(len(h.client.calls), 2)

    def test_labels_filter(self) -> None:
        """Only the buses carrying every configured label are called."""
        h = Harness(self, central_config(self, {
            "url_pattern": "/s",
            "extra_config": {"busgw/fleet": {"labels": {"line": "A"}}},
        }))
        d = h.request("/live/x")
        self.assertEqual(
            sorted(c.url for c in h.client.calls), ["http://bus1:81/s", "http://bus3:83/s"]
        )
        for call in h.client.calls:
            call.answer({"ok": True})
        _, body = h.done(self, d)
        self.assertEqual(sorted(_json(body)["buses"]), ["b1", "b3"])

    def test_partial_result_names_missing(self) -> None:
        """A bus refusing the connection and one answering 500 are missing
        (sorted), the answer is partial, the others' data is there."""
        h = Harness(self, central_config(self, {"url_pattern": "/s",
                                                "extra_config": {"busgw/fleet": True}}))
        d = h.request("/live/x")
        h.client.by_host("bus3").d.errback(ConnectionRefusedError())
        h.client.by_host("bus1").answer({"error": "boom"}, code=500)
        h.client.by_host("bus2").answer({"speed": 40})
        response, body = h.done(self, d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("X-Krakend-Completed"), ["false"])
        self.assertEqual(
            _json(body), {"buses": {"b2": {"speed": 40}}, "missing": ["b1", "b3"]}
        )

    def test_slow_bus_times_out(self) -> None:
        """A bus slower than the backend's timeout is cancelled and named
        missing; the endpoint still answers before its own timeout."""
        h = Harness(self, central_config(self, {
            "url_pattern": "/s",
            "extra_config": {"busgw/fleet": {"timeout": "500ms"}},
        }))
        d = h.request("/live/x")
        h.client.by_host("bus1").answer({"a": 1})
        h.client.by_host("bus2").answer({"b": 2})
        slow = h.client.by_host("bus3")
        h.clock.advance(0.5)
        self.assertTrue(slow.cancelled)
        _, body = h.done(self, d)
        self.assertEqual(_json(body)["missing"], ["b3"])
        self.assertEqual(sorted(_json(body)["buses"]), ["b1", "b2"])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_deadline_names_unstarted_buses(self) -> None:
        """At the fan-out's deadline (80 % of the endpoint timeout) the bus
        still running and those never started are all missing."""
        config = central_config(
            self, {"url_pattern": "/s", "extra_config": {"busgw/fleet": {"concurrency": 1}}},
            timeout="1s",
        )
        h = Harness(self, config)
        d = h.request("/live/x")
        self.assertEqual(len(h.client.calls), 1)
        h.clock.advance(0.8)
        response, body = h.done(self, d)
        self.assertEqual(response.code, 200)
        self.assertEqual(_json(body), {"buses": {}, "missing": ["b1", "b2", "b3"]})
        self.assertEqual(len(h.client.calls), 1)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_tokens_per_bus(self) -> None:
        """Each bus gets the central's token with its own audience, never
        the caller's Authorization even when the endpoint forwards it."""
        config = central_config(
            self,
            {"url_pattern": "/s", "extra_config": {"busgw/fleet": True}},
            input_headers=["Authorization"],
        )
        h = Harness(self, config)
        key = generate_key("ES256")
        signing = SigningConfig(key="unused.pem", kid="central-1")
        h.role.tokens = BusTokens(signing, key, h.clock)
        h.request("/live/x", headers={"Authorization": "Bearer caller"})
        public = key.public_key()
        for bus in BUSES:
            call = h.client.by_host(bus.url.split("//")[1])
            auth = call.headers.getRawHeaders(b"Authorization")
            self.assertEqual(len(auth), 1)
            scheme, token = auth[0].decode().split(" ")
            self.assertEqual(scheme, "Bearer")
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                audience=f"bus-{bus.id}",
                options={"verify_exp": False},  # a Clock at 0
            )
            self.assertEqual(claims["iss"], "central")

    def test_no_signing_no_authorization(self) -> None:
        """Without signing, no Authorization reaches the buses at all."""
        config = central_config(
            self,
            {"url_pattern": "/s", "extra_config": {"busgw/fleet": True}},
            input_headers=["Authorization"],
        )
        h = Harness(self, config)
        h.request("/live/x", headers={"Authorization": "Bearer caller"})
        self.assertEqual(len(h.client.calls), 3)
        for call in h.client.calls:
            self.assertIsNone(call.header("Authorization"))

    def test_shaping_per_bus_and_group(self) -> None:
        """target, allow and mapping shape each bus's answer; group wraps
        the fleet result as a whole."""
        h = Harness(self, central_config(self, {
            "url_pattern": "/s",
            "target": "vehicle",
            "allow": ["speed", "fuel"],
            "mapping": {"fuel": "fuel_pct"},
            "group": "live",
            "extra_config": {"busgw/fleet": {"labels": {"line": "A"}}},
        }))
        d = h.request("/live/x")
        for call in h.client.calls:
            call.answer({"vehicle": {"speed": 30, "fuel": 50, "vin": "secret"}})
        _, body = h.done(self, d)
        shaped = {"speed": 30, "fuel_pct": 50}
        self.assertEqual(
            _json(body),
            {"live": {"buses": {"b1": shaped, "b3": shaped}, "missing": []}},
        )

    def test_stop_cancels_in_flight(self) -> None:
        """Stopping the part cancels every bus call still running."""
        h = Harness(self, central_config(self, {"url_pattern": "/s",
                                                "extra_config": {"busgw/fleet": True}}))
        h.request("/live/x")
        self.assertEqual(h.client.open, 3)
        h.part.stop()
        self.assertEqual(h.client.open, 0)
        self.assertTrue(all(c.cancelled for c in h.client.calls))
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_fleet_swapped_on_reload(self) -> None:
        """The calls follow role.fleet as it is when a request starts."""
        h = Harness(self, central_config(self, {"url_pattern": "/s",
                                                "extra_config": {"busgw/fleet": True}}))
        h.role.config = attrs.evolve(
            h.role.config, fleet=(BusEntry(id="n1", url="http://new:90"),)
        )
        d = h.request("/live/x")
        self.assertEqual([c.url for c in h.client.calls], ["http://new:90/s"])
        h.client.calls[0].answer({"v": 1})
        _, body = h.done(self, d)
        self.assertEqual(_json(body)["buses"], {"n1": {"v": 1}})


class PassThroughTests(SynchronousTestCase):
    def harness(self) -> Harness:
        return Harness(self, central_config(self, {"url_pattern": "/s",
                                                   "extra_config": {"busgw/fleet": True}}))

    def test_forwarded_as_is(self) -> None:
        """Method, path, query, body, Content-Type and Accept reach the bus;
        its status, Content-Type and body come back unchanged."""
        h = self.harness()
        key = generate_key("ES256")
        h.role.tokens = BusTokens(SigningConfig(key="k.pem", kid="c"), key, h.clock)
        d = h.request(
            "/buses/b2/doors/front?open=1&x=%20y",
            method="POST",
            data=b'{"cmd":"open"}',
            headers={
                "Content-Type": "application/json",
                "Accept": "text/plain",
                "Authorization": "Bearer caller",
                "X-Other": "no",
            },
        )
        (call,) = h.client.calls
        self.assertEqual(call.method, "POST")
        self.assertEqual(call.url, "http://bus2:82/doors/front?open=1&x=%20y")
        self.assertEqual(call.data, b'{"cmd":"open"}')
        self.assertEqual(call.header("Content-Type"), "application/json")
        self.assertEqual(call.header("Accept"), "text/plain")
        self.assertIsNone(call.header("X-Other"))
        token = call.header("Authorization").split(" ")[1]  # type: ignore[union-attr]
        jwt.decode(
            token,
            key.public_key(),
            algorithms=["ES256"],
            audience="bus-b2",
            options={"verify_exp": False},
        )
        call.answer(b"opened", code=202, content_type="text/plain")
        response, body = h.done(self, d)
        self.assertEqual(response.code, 202)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"), ["text/plain"])
        self.assertEqual(body, b"opened")

    def test_unknown_bus(self) -> None:
        """An id not in the fleet is a JSON 404 and calls nothing."""
        h = self.harness()
        response, body = h.done(self, h.request("/buses/nope/status"))
        self.assertEqual(response.code, 404)
        self.assertEqual(_json(body)["status"], 404)
        self.assertEqual(h.client.calls, [])

    def test_bad_paths(self) -> None:
        """Dot segments, encoded slashes and empty segments are a 400."""
        h = self.harness()
        for path in ("/buses/b1/a/../../x", "/buses/b1/a/%2e%2e/x",
                     "/buses/b1/a%2Fb", "/buses/b1/a//b"):
            response, _ = h.done(self, h.request(path))
            self.assertEqual(response.code, 400, path)
        self.assertEqual(h.client.calls, [])

    def test_body_too_large(self) -> None:
        """A body over 1 MiB is a 413 and calls nothing."""
        h = self.harness()
        d = h.request("/buses/b1/x", method="PUT", data=b"x" * (MAX_REQUEST_BYTES + 1))
        response, _ = h.done(self, d)
        self.assertEqual(response.code, 413)
        self.assertEqual(h.client.calls, [])

    def test_unreachable_and_timeout(self) -> None:
        """A refused connection is a 502, a bus that never answers a 504."""
        h = self.harness()
        d = h.request("/buses/b1/x")
        h.client.calls[0].d.errback(ConnectionRefusedError())
        response, body = h.done(self, d)
        self.assertEqual((response.code, _json(body)["error"]), (502, "bus_unreachable"))
        d = h.request("/buses/b1/x")
        h.clock.advance(10)
        response, body = h.done(self, d)
        self.assertEqual((response.code, _json(body)["error"]), (504, "bus_timeout"))
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_configured_timeout(self) -> None:
        """passthrough_timeout bounds the call instead of the 10 s default."""
        config = central_config(self, {"url_pattern": "/s", "extra_config": {"busgw/fleet": True}})
        assert config.central is not None
        central = attrs.evolve(config.central, passthrough_timeout=30.0)
        h = Harness(self, attrs.evolve(config, central=central))
        d = h.request("/buses/b1/x")
        h.clock.advance(29)
        self.assertNoResult(d)
        h.clock.advance(1)
        response, body = h.done(self, d)
        self.assertEqual((response.code, _json(body)["error"]), (504, "bus_timeout"))

    def test_check_rest(self) -> None:
        """check_rest keeps encoded text as it is and refuses what could
        leave the bus's base URL."""
        self.assertEqual(check_rest(b"a/b%20c/"), "a/b%20c/")
        for bad in (b"..", b"a/.", b"a/%2E%2e", b"a%5cb", b"a b", b"%zz", b"a%00"):
            self.assertRaises(GatewayError, check_rest, bad)


class ConfigTests(SynchronousTestCase):
    def parse(self, backend: Dict[str, Any], central: bool = True) -> Any:
        raw: Dict[str, Any] = {
            "version": 3,
            "endpoints": [{"endpoint": "/live", "backend": [backend]}],
        }
        if central:
            raw["extra_config"] = {"busgw/central": {"state_dir": self.mktemp()}}
        return parse_config(raw)

    def test_true_and_object(self) -> None:
        """true takes every default; an object sets concurrency, labels and
        timeout; no host is needed."""
        result = self.parse({"url_pattern": "/s", "extra_config": {"busgw/fleet": True}})
        fleet = result.config.endpoints[0].backends[0].fleet
        self.assertEqual((fleet.concurrency, dict(fleet.labels), fleet.timeout), (None, {}, None))
        result = self.parse({"url_pattern": "/s", "extra_config": {"busgw/fleet": {
            "concurrency": 7, "labels": {"line": "FW-12"}, "timeout": "1s"}}})
        backend = result.config.endpoints[0].backends[0]
        self.assertEqual(backend.hosts, ())
        self.assertEqual(
            (backend.fleet.concurrency, dict(backend.fleet.labels), backend.fleet.timeout),
            (7, {"line": "FW-12"}, 1.0),
        )
        self.assertEqual(result.warnings, ())

    def test_false_is_an_ordinary_backend(self) -> None:
        """false leaves an ordinary backend, which needs a host."""
        with self.assertRaises(ConfigError) as caught:
            self.parse({"url_pattern": "/s", "extra_config": {"busgw/fleet": False}})
        self.assertIn("endpoints[0].backend[0].host", str(caught.exception))

    def test_needs_central(self) -> None:
        """busgw/fleet on a gateway without busgw/central is an error at its
        path."""
        with self.assertRaises(ConfigError) as caught:
            self.parse({"url_pattern": "/s", "extra_config": {"busgw/fleet": True}},
                       central=False)
        self.assertIn(
            "endpoints[0].backend[0].extra_config.busgw/fleet", str(caught.exception)
        )

    def test_bad_values(self) -> None:
        """Bad values are errors naming their paths; unknown keys warn."""
        with self.assertRaises(ConfigError) as caught:
            self.parse({"url_pattern": "/s", "extra_config": {"busgw/fleet": {
                "concurrency": 0, "labels": {"line": 3}, "timeout": "soon", "x": 1}}})
        text = str(caught.exception)
        for path in ("busgw/fleet.concurrency", "busgw/fleet.labels.line",
                     "busgw/fleet.timeout", "warning: endpoints[0].backend[0]"
                     ".extra_config.busgw/fleet.x"):
            self.assertIn(path, text)

    def test_long_timeout_warns_and_host_ignored(self) -> None:
        """A per-bus timeout past the fan-out deadline and a host warn."""
        result = self.parse({"url_pattern": "/s", "host": ["http://x"],
                             "extra_config": {"busgw/fleet": {"timeout": "2s"}}})
        paths = sorted(p.path for p in result.warnings)
        self.assertEqual(
            paths,
            ["endpoints[0].backend[0].extra_config.busgw/fleet.timeout",
             "endpoints[0].backend[0].host"],
        )

    def test_noop_refused(self) -> None:
        """A no-op endpoint cannot hold a fleet backend."""
        with self.assertRaises(ConfigError) as caught:
            parse_config({
                "version": 3,
                "extra_config": {"busgw/central": {"state_dir": self.mktemp()}},
                "endpoints": [{"endpoint": "/live", "output_encoding": "no-op",
                               "backend": [{"url_pattern": "/s",
                                            "extra_config": {"busgw/fleet": True}}]}],
            })
        self.assertIn("no-op", str(caught.exception))

    def test_app_without_role(self) -> None:
        """An app built without the central role answers a fleet backend
        with an error instead of failing to build."""
        config = central_config(self, {"url_pattern": "/s",
                                       "extra_config": {"busgw/fleet": True}})
        app = GatewayApp(config, FakeClient(), Clock())
        stub = StubTreq(app.resource())
        d = stub.get("http://central/live/x")
        stub.flush()
        self.assertEqual(self.successResultOf(d).code, 500)
