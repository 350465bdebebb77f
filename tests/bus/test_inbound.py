"""Data pushed by the central (busd.bus.inbound): store, read back,
history, refusals, JWT protection and forwarding, through StubTreq."""

from __future__ import annotations

import json
import random
from typing import Any, Dict, Optional, Tuple

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from busd.app import GatewayApp
from busd.bus.inbound import InboundService
from busd.testing import JSONBackend
from tests.auth._support import AUD, ISS, ec_key, jwks, public_jwk, pyjwt_token
from tests.health._support import ManualClient
from tests.helpers import B1, Gateway, config, get

NOW = 1_795_000_000.0  # 2026-11-18T11:06:40Z
DEVICE = "http://display:9104"


def inbound_config(*topics: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    """A v3 config with one endpoint and the given topics."""
    return config(
        [
            {
                "endpoint": "/status",
                "backend": [{"host": [B1], "url_pattern": "/s"}],
            }
        ],
        extra_config={"busgw/inbound": {"topics": list(topics)}, **extra},
    )


TRAFFIC = {"name": "traffic", "path": "/data/traffic", "history": 3}


class Bus:
    """A gateway with the inbound role installed, at NOW."""

    def __init__(
        self, raw: Dict[str, Any], client: Any = None, **backends: Any
    ) -> None:
        self.display = JSONBackend({"/traffic": (204, b"")})
        hosts = {B1: JSONBackend({}), DEVICE: self.display, **backends}
        self.gw = Gateway(raw, hosts)
        self.gw.clock.advance(NOW)
        assert self.gw.config.inbound is not None
        self.role = InboundService(
            self.gw.config.inbound,
            reactor=None,
            clock=self.gw.clock,
            client=client or self.gw.backend_stub,
        )
        self.role.install(self.gw.app)
        self.role.startService()

    def call(
        self,
        case: SynchronousTestCase,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        **headers: str,
    ) -> Tuple[int, Any, Any]:
        """(status, headers, JSON body) of one request."""
        kw: Dict[str, Any] = {
            "headers": {k.replace("_", "-"): [v] for k, v in headers.items()}
        }
        if body is not None:
            kw["data"] = body
        response, raw = get(case, self.gw, path, method=method, **kw)
        return response.code, response.headers, json.loads(raw) if raw else None


class StoreTests(SynchronousTestCase):
    """Pushing and reading back a topic."""

    def setUp(self) -> None:
        self.bus = Bus(
            inbound_config(
                TRAFFIC,
                {"name": "orders", "path": "/data/orders", "methods": ["PUT"]},
            )
        )

    def test_put_then_get(self) -> None:
        """A PUT is stored and GET returns it with when it arrived."""
        code, _, answer = self.bus.call(
            self, "PUT", "/data/traffic", b'{"jam": "A1"}'
        )
        self.assertEqual(
            (code, answer),
            (
                200,
                {
                    "topic": "traffic",
                    "stored": True,
                    "received_at": "2026-11-18T11:06:40Z",
                },
            ),
        )
        self.bus.gw.clock.advance(5)
        code, headers, latest = self.bus.call(self, "GET", "/data/traffic")
        self.assertEqual(code, 200)
        self.assertEqual(
            latest,
            {
                "topic": "traffic",
                "received_at": "2026-11-18T11:06:40Z",
                "method": "PUT",
                "data": {"jam": "A1"},
            },
        )
        self.assertEqual(
            headers.getRawHeaders("Content-Type"),
            ["application/json; charset=utf-8"],
        )

    def test_post_replaces(self) -> None:
        """A POST is stored too and becomes the latest value."""
        self.bus.call(self, "PUT", "/data/traffic", b"[1]")
        self.bus.call(self, "POST", "/data/traffic", b'"clear"')
        _, _, latest = self.bus.call(self, "GET", "/data/traffic")
        self.assertEqual((latest["method"], latest["data"]), ("POST", "clear"))

    def test_methods(self) -> None:
        """A topic limited to PUT answers POST with 405 and Allow."""
        code, headers, _ = self.bus.call(self, "POST", "/data/orders", b"{}")
        self.assertEqual(code, 405)
        self.assertIn("PUT", headers.getRawHeaders("Allow")[0])

    def test_nothing_yet(self) -> None:
        """GET before any push is a JSON 404; history is empty."""
        code, _, body = self.bus.call(self, "GET", "/data/traffic")
        self.assertEqual((code, body["status"]), (404, 404))
        self.assertIn("no data yet on topic traffic", body["error"])
        code, _, history = self.bus.call(self, "GET", "/data/traffic/history")
        self.assertEqual(
            (code, history), (200, {"topic": "traffic", "items": []})
        )

    def test_history_bound(self) -> None:
        """History keeps the newest ``history`` values, newest first."""
        for n in range(5):
            self.bus.call(
                self, "PUT", "/data/traffic", json.dumps({"n": n}).encode()
            )
            self.bus.gw.clock.advance(1)
        _, _, history = self.bus.call(self, "GET", "/data/traffic/history")
        self.assertEqual([i["data"]["n"] for i in history["items"]], [4, 3, 2])
        self.assertEqual(
            history["items"][0]["received_at"], "2026-11-18T11:06:44Z"
        )

    def test_topics_apart(self) -> None:
        """Each topic keeps its own values."""
        self.bus.call(self, "PUT", "/data/orders", b'{"o": 1}')
        code, _, _ = self.bus.call(self, "GET", "/data/traffic")
        self.assertEqual(code, 404)

    def test_not_json(self) -> None:
        """A body that is not JSON (or empty, or NaN) is a 400; nothing is kept."""
        for body in (b"jam on A1", b"", b"NaN", b'{"a": 1', b"\xff\xfe{"):
            code, _, answer = self.bus.call(self, "PUT", "/data/traffic", body)
            self.assertEqual((code, answer["status"]), (400, 400), body)
            self.assertEqual(
                answer["error"], "the body must be a JSON document"
            )
        code, _, _ = self.bus.call(self, "GET", "/data/traffic")
        self.assertEqual(code, 404)

    def test_survives_new_generation(self) -> None:
        """A reloaded config's app serves the values already stored."""
        self.bus.call(self, "PUT", "/data/traffic", b"7")
        app = GatewayApp(
            self.bus.gw.config,
            self.bus.gw.backend_stub,
            self.bus.gw.clock,
            rng=random.Random(0),
        )
        self.bus.role.install(app)
        stub = StubTreq(app.resource())
        response = self.successResultOf(stub.get("http://gw/data/traffic"))
        self.assertEqual(
            json.loads(self.successResultOf(response.content()))["data"], 7
        )


class LimitTests(SynchronousTestCase):
    """max_bytes: 413 past the topic's limit."""

    def test_too_large(self) -> None:
        """A body over max_bytes is a 413; at the limit it is stored."""
        bus = Bus(inbound_config(dict(TRAFFIC, max_bytes=10)))
        code, _, answer = bus.call(
            self, "PUT", "/data/traffic", b'"' + b"x" * 9 + b'"'
        )
        self.assertEqual((code, answer["status"]), (413, 413))
        self.assertIn("exceeds 10 bytes", answer["error"])
        code, _, _ = bus.call(
            self, "PUT", "/data/traffic", b'"' + b"x" * 8 + b'"'
        )
        self.assertEqual(code, 200)


class AuthTests(SynchronousTestCase):
    """Topics run the service's JWT default, unless public."""

    def setUp(self) -> None:
        path = self.mktemp()
        with open(path, "w") as handle:
            json.dump(jwks(public_jwk(ec_key(), "k1")), handle)
        validator = {
            "alg": "ES256",
            "jwk_local_path": path,
            "issuer": ISS,
            "audience": [AUD],
        }
        raw = inbound_config(
            TRAFFIC,
            {"name": "weather", "path": "/data/weather", "public": True},
            **{"busgw/auth": {"validator": validator}},
        )
        self.bus = Bus(raw)
        token = pyjwt_token(ec_key(), "ES256", iat=int(NOW), exp=int(NOW) + 60)
        self.auth = "Bearer " + token

    def test_refused_without_token(self) -> None:
        """PUT, GET and history all answer 401 without a token."""
        for method, path in (
            ("PUT", "/data/traffic"),
            ("GET", "/data/traffic"),
            ("GET", "/data/traffic/history"),
        ):
            code, headers, body = self.bus.call(self, method, path, b"{}")
            self.assertEqual(
                (code, body["error"]), (401, "missing token"), path
            )
            self.assertEqual(
                headers.getRawHeaders("WWW-Authenticate"),
                ['Bearer realm="busgw"'],
            )

    def test_bad_token(self) -> None:
        """A token that does not verify is refused."""
        code, _, body = self.bus.call(
            self,
            "PUT",
            "/data/traffic",
            b"{}",
            Authorization=self.auth[:-4] + "AAAA",
        )
        self.assertEqual((code, body["error"]), (401, "invalid token"))

    def test_with_token(self) -> None:
        """With the central's token a push is stored and read back."""
        code, _, _ = self.bus.call(
            self, "PUT", "/data/traffic", b'{"a": 1}', Authorization=self.auth
        )
        self.assertEqual(code, 200)
        code, _, latest = self.bus.call(
            self, "GET", "/data/traffic", Authorization=self.auth
        )
        self.assertEqual((code, latest["data"]), (200, {"a": 1}))

    def test_public_topic(self) -> None:
        """A public topic needs no token."""
        code, _, _ = self.bus.call(
            self, "PUT", "/data/weather", b'{"rain": true}'
        )
        self.assertEqual(code, 200)

    def test_date_observed(self) -> None:
        """The Date of an accepted push is the central's clock."""
        self.bus.call(
            self,
            "PUT",
            "/data/traffic",
            b"{}",
            Date="Wed, 18 Nov 2026 11:06:30 GMT",
        )
        self.assertIsNone(self.bus.role.central_clock.drift())  # refused
        self.bus.call(
            self,
            "PUT",
            "/data/traffic",
            b"{}",
            Authorization=self.auth,
            Date="Wed, 18 Nov 2026 11:06:30 GMT",
        )
        self.assertEqual(self.bus.role.central_clock.drift(), 10.0)

    def test_public_date_ignored(self) -> None:
        """A public topic's Date header is not taken as the central's."""
        code, _, _ = self.bus.call(
            self,
            "PUT",
            "/data/weather",
            b"{}",
            Date="Wed, 18 Nov 2026 11:06:30 GMT",
        )
        self.assertEqual(code, 200)
        self.assertIsNone(self.bus.role.central_clock.drift())


FORWARDED = dict(
    TRAFFIC,
    forward={"host": DEVICE, "url_pattern": "/traffic", "timeout": "1s"},
)


class ForwardTests(SynchronousTestCase):
    """forward: the pushed value also goes to a device service."""

    def test_forwarded(self) -> None:
        """The device gets the same method and body; the answer says so."""
        bus = Bus(inbound_config(FORWARDED))
        code, headers, answer = bus.call(
            self, "POST", "/data/traffic", b'{"jam": 2}'
        )
        self.assertEqual((code, answer["forward"]), (200, {"status": 204}))
        self.assertEqual(headers.getRawHeaders("X-Krakend-Completed"), ["true"])
        ((method, uri, sent, body),) = bus.display.requests
        self.assertEqual(
            (method, uri, body), ("POST", "/traffic", b'{"jam": 2}')
        )
        self.assertEqual(sent["content-type"], ["application/json"])

    def test_device_fails(self) -> None:
        """A failing device: still stored, the header says incomplete."""
        bus = Bus(inbound_config(FORWARDED))
        bus.display.routes["/traffic"] = (500, {"error": "x"})
        code, headers, answer = bus.call(self, "PUT", "/data/traffic", b"1")
        self.assertEqual((code, answer["forward"]), (200, {"status": 500}))
        self.assertEqual(
            headers.getRawHeaders("X-Krakend-Completed"), ["false"]
        )
        code, _, latest = bus.call(self, "GET", "/data/traffic")
        self.assertEqual(latest["data"], 1)

    def test_device_silent(self) -> None:
        """A device that does not answer in time: an error, no hang."""
        client = ManualClient()
        bus = Bus(inbound_config(FORWARDED), client=client)
        d = bus.gw.stub.request("PUT", "http://gw/data/traffic", data=b"1")
        bus.gw.flush()
        self.assertNoResult(d)
        bus.gw.clock.advance(1)
        bus.gw.flush()
        response = self.successResultOf(d)
        answer = json.loads(self.successResultOf(response.content()))
        self.assertEqual(answer["forward"], {"error": "no answer within 1s"})
        self.assertEqual(bus.gw.clock.getDelayedCalls(), [])
