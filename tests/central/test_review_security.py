"""Security review of the central: crafted events, crafted bus answers and
the pass-through, each a regression test for a defect that was found."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, List, Tuple

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.trial.unittest import SynchronousTestCase

from busd.app import GatewayApp
from busd.central._answers import decode
from busd.central.fleet import Answer, FleetState
from busd.central.hub import Hub
from busd.central.routes import make_part as make_routes
from busd.config._central import BusEntry
from busd.config.model import GatewayConfig
from busd.testing import JSONBackend
from tests.central._ingest_support import (
    BUS,
    Central,
    bus_token,
    central_config,
    event,
    write_bus_key,
)
from tests.central._pollfakes import HEALTH_OK, NOW, FakeRole, fleet_config
from tests.central.test_live import Harness
from tests.central.test_live import central_config as live_config


def strict_json(raw: bytes) -> Any:
    """``raw`` parsed as a strict JSON reader (a browser's JSON.parse, Go's
    encoding/json) does: NaN and Infinity are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


class _Events(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.key, self.jwks = write_bus_key(os.path.join(self.dir, "keys"))
        self.other, other_jwks = write_bus_key(
            os.path.join(self.dir, "keys"), "FW-0007"
        )
        self.fleet = (
            BusEntry(id=BUS, url="http://bus42:8080", key=self.jwks),
            BusEntry(id="FW-0007", url="http://bus7:8080", key=other_jwks),
        )
        self.config = central_config(os.path.join(self.dir, "state"), self.fleet)


class CraftedEventTests(_Events):
    def setUp(self) -> None:
        super().setUp()
        self.central = Central(self.config)
        self.addCleanup(self.central.stop)

    def post_raw(self, body: bytes) -> Tuple[int, Any]:
        code, answer, _ = self.successResultOf(
            self.central.post(body, bus_token(self.key))
        )
        return code, answer

    def listing(self) -> bytes:
        d = self.central.http.get("http://central/fleet/events")
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        return self.successResultOf(response.content())

    def test_overflowing_number_refused(self) -> None:
        """A number JSON can carry but a float cannot (1e999) is a 400 on
        ``data``, so the listing (and the dashboard reading it, and the
        webhooks posting it) never holds a bare ``Infinity``."""
        raw = json.dumps(event(data={"x": 1})).replace('"x": 1', '"x": 1e999')
        code, answer = self.post_raw(raw.encode())
        self.assertEqual((code, answer.get("path")), (400, "data"))
        strict_json(self.listing())

    def test_lone_surrogate_refused(self) -> None:
        """A lone UTF-16 surrogate in ``data`` is a 400 (not a 503 that the
        bus retries for ever, failing every event committed with it)."""
        raw = json.dumps(event(data={"x": "\ud800"}), ensure_ascii=True)
        code, answer = self.post_raw(raw.encode())
        self.assertEqual((code, answer.get("path")), (400, "data"))

    def test_seq_beyond_64_bits_refused(self) -> None:
        """A ``seq`` SQLite cannot store is a 400 on ``seq``, not a 503."""
        code, answer = self.post_raw(json.dumps(event(seq=2**64)).encode())
        self.assertEqual((code, answer.get("path")), (400, "seq"))

    def test_huge_integer_is_a_400(self) -> None:
        """An integer past Python's digit limit is a 400, not a 500."""
        raw = json.dumps(event(data={"x": 1})).replace('"x": 1', '"x": ' + "9" * 5000)
        code, _ = self.post_raw(raw.encode())
        self.assertEqual(code, 400)

    def test_cursor_beyond_64_bits(self) -> None:
        """A ``since`` cursor past SQLite's integers (or Python's digit
        limit) is a 400 naming it, not a 500."""
        for since in ("9" * 20, "9" * 5000):
            d = self.central.http.get(f"http://central/fleet/events?since={since}")
            response = self.successResultOf(d)
            body = json.loads(self.successResultOf(response.content()))
            self.assertEqual((response.code, body.get("parameter")), (400, "since"))
        d = self.central.http.get("http://central/fleet/events?limit=" + "1" * 5000)
        self.assertEqual(self.successResultOf(d).code, 400)


class _HeldRunner:
    """The events worker thread, held: calls run when the test says."""

    def __init__(self) -> None:
        self.queue: List[Tuple[Callable[..., Any], Tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, fn: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.queue.append((fn, args, d))
        return d

    def drain(self) -> None:
        while self.queue:
            self.step()

    def step(self) -> None:
        fn, args, d = self.queue.pop(0)
        maybeDeferred(fn, *args).chainDeferred(d)


class PoisonedBatchTests(_Events):
    def test_one_bus_cannot_fail_another_bus_commit(self) -> None:
        """Events committed together: one bus's unstorable event (a lone
        surrogate) does not turn another bus's event into a 503."""
        import types

        from busd.central.ingest import EventsPart

        runner = _HeldRunner()
        clock = FakeRole(self.config).clock
        role = types.SimpleNamespace(
            config=self.config, clock=clock, client=None, hub=None,
            reactor=None, events=None,
        )  # fmt: skip
        part = EventsPart(role, run=runner)
        part.start()
        self.addCleanup(lambda: (part.stop(), runner.drain()))
        app = GatewayApp(GatewayConfig(central=self.config), None, clock)
        part.install(app)
        http = StubTreq(app.resource())

        def post(body: Any, key: Any, bus_id: str) -> Any:
            token = bus_token(key, bus_id, now=clock.seconds())
            headers = {b"Authorization": [b"Bearer " + token.encode()]}
            return http.post(
                "http://central/events",
                data=json.dumps(body).encode(),
                headers=headers,
            )

        runner.drain()  # the database is open
        # Serial worker: e-0's key, e-1's, e-2's, then e-0's write; e-1
        # and e-2 arrive during it and wait together for the next commit.
        first = post(event("e-0"), self.key, BUS)
        bad = post(event("e-1", data={"x": "\ud800"}), self.key, BUS)
        good = post(event("e-2", "FW-0007"), self.other, "FW-0007")
        runner.drain()
        http.flush()
        self.assertEqual(self.successResultOf(first).code, 201)
        self.assertEqual(self.successResultOf(good).code, 201)
        self.assertEqual(self.successResultOf(bad).code, 400)


class CraftedBusAnswerTests(SynchronousTestCase):
    def test_non_finite_numbers_become_null(self) -> None:
        """A bus answering NaN, Infinity or 1e999 gives null there, so every
        fleet route stays JSON for the whole fleet."""
        answer = decode(b'{"a": NaN, "b": -Infinity, "c": 1e999, "d": 1.5}', 200, False)
        self.assertEqual(answer.data, {"a": None, "b": None, "c": None, "d": 1.5})
        central = fleet_config(["a"])
        role = FakeRole(central)
        role.state = FleetState(central, role.clock)
        app = GatewayApp(GatewayConfig(central=central), StubTreq(JSONBackend({})), role.clock)
        make_routes(role).install(app)
        stub = StubTreq(app.resource())
        status = decode(b'{"speed": NaN, "fuel": 1e999}', 200, False)
        role.state.record(
            "a", NOW, NOW, Answer(status=200, data=HEALTH_OK), {"status": status}
        )
        for path in ("/fleet/status", "/fleet/buses/a", "/fleet/health"):
            response = self.successResultOf(stub.get("http://central" + path))
            strict_json(self.successResultOf(response.content()))

    def test_lone_surrogate_keeps_the_stream(self) -> None:
        """A lone surrogate in a bus's health (a check's reason) does not
        drop the ``fleet`` snapshot every new dashboard stream starts with."""
        central = fleet_config(["a"])
        role = FakeRole(central)
        state = FleetState(central, role.clock)
        health = json.loads(
            '{"status": "degraded", "checks": [{"name": "gps", "status":'
            ' "warning", "level": "warning", "reason": "\\ud800"}]}'
        )
        state.record("a", NOW, NOW, Answer(status=200, data=health), {})
        hub = Hub(role.clock, snapshot=lambda: {"health": state.fleet_health()})
        request = _Request()
        hub.subscribe(request)
        hub.publish("bus", state.summary("a"))
        self.addCleanup(hub.stop)
        written = b"".join(request.written)
        messages = [m for m in written.split(b"\n\n") if m.startswith(b"event:")]
        self.assertEqual(
            [m.split(b"\n")[0] for m in messages], [b"event: fleet", b"event: bus"]
        )
        for message in messages:
            data = strict_json(message.split(b"\ndata: ", 1)[1])
            self.assertIsInstance(data, dict)


class _Request:
    """What the hub uses of a twisted.web request."""

    def __init__(self) -> None:
        self.written: List[bytes] = []
        self.headers: dict = {}

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def notifyFinish(self) -> "Deferred[None]":
        return Deferred()

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def finish(self) -> None:
        pass


class PassThroughOriginTests(SynchronousTestCase):
    def test_bus_html_cannot_run_on_the_central_origin(self) -> None:
        """A bus (or a device behind it) answering HTML through
        ``/buses/{id}/...`` is served sandboxed (CSP ``sandbox``, no
        script, nosniff), so it cannot act with the fleet manager's
        cookie on the central's origin; its Set-Cookie never comes back."""
        h = Harness(self, live_config(self, {"url_pattern": "/s",
                                             "extra_config": {"busgw/fleet": True}}))  # fmt: skip
        d = h.request("/buses/b1/page")
        (call,) = h.client.calls
        call.answer(
            b"<script>fetch('/buses/b2/doors', {method: 'POST'})</script>",
            content_type="text/html",
        )
        response, _ = h.done(self, d)
        csp = response.headers.getRawHeaders(b"Content-Security-Policy") or [b""]
        self.assertIn(b"sandbox", csp[0])
        self.assertIn(b"default-src 'none'", csp[0])
        self.assertEqual(
            response.headers.getRawHeaders(b"X-Content-Type-Options"), [b"nosniff"]
        )
        self.assertIsNone(response.headers.getRawHeaders(b"Set-Cookie"))


class PassThroughCrossSiteTests(SynchronousTestCase):
    def test_cross_site_commands_refused(self) -> None:
        """A command (POST, PUT, DELETE, PATCH) that a browser marks as sent
        from another site (``Sec-Fetch-Site``: a form on any web page the
        fleet manager opens, carrying her token cookie) is a 403 and never
        reaches the bus; the same origin, a typed URL and programs (no
        such header) pass."""
        h = Harness(self, live_config(self, {"url_pattern": "/s",
                                             "extra_config": {"busgw/fleet": True}}))  # fmt: skip
        for site in ("cross-site", "same-site"):
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                d = h.request(
                    "/buses/b1/doors/open",
                    method=method,
                    data=b'{"open": true}',
                    headers={"Sec-Fetch-Site": site,
                             "Cookie": "access_token=t"},
                )  # fmt: skip
                response, _ = h.done(self, d)
                self.assertEqual(response.code, 403, (site, method))
        self.assertEqual(h.client.calls, [])
        for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
            h.request("/buses/b1/doors/open", method="POST", data=b"{}", headers=headers)
        self.assertEqual(len(h.client.calls), 3)
