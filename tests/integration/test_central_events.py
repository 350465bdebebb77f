"""Events end to end over loopback: a real bus gateway (busgw/bus, its
outbox and sender) delivering to a real central (busgw/central), which
stores the event, lists it and posts it to a webhook receiver."""

from __future__ import annotations

import json
import os
from typing import Any, List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource

from busd.auth.sign import generate_key, make_token, public_jwks
from busd.config.load import parse_config
from tests.bus._events_support import write_key
from tests.integration._events import event_body, free_port, post_event
from tests.integration._util import client, serve, start_gateway

BUS = "FW-0042"


class Receiver(Resource):
    """A webhook receiver: records each POST (headers, JSON body)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: List[Any] = []
        self._waiting: List[Deferred[Any]] = []

    def render_POST(self, request: Any) -> bytes:
        body = json.loads(request.content.read())
        key = request.getHeader(b"idempotency-key")
        self.received.append((key, body))
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(body)
        request.setHeader(b"Content-Type", b"application/json")
        return b"{}"

    def next(self) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self._waiting.append(d)
        return d


class CentralEventsTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self) -> Any:
        root = os.path.abspath(self.mktemp())
        key_path, self.bus_key = write_key(os.path.join(root, "bus"))
        jwks = os.path.join(root, "bus", "bus.jwks.json")
        with open(jwks, "w") as handle:
            json.dump(public_jwks(self.bus_key, BUS), handle)
        self.receiver = Receiver()
        hook_url, _ = yield serve(self, self.receiver)
        bus_port = yield free_port()
        central_raw = {
            "version": 3,
            "endpoints": [],
            "extra_config": {
                "busgw/central": {
                    "state_dir": os.path.join(root, "central"),
                    "fleet": [
                        {"id": BUS, "url": f"http://127.0.0.1:{bus_port}", "key": jwks}
                    ],
                    "poll": {"interval": "60s"},
                    "webhooks": [
                        {"url": hook_url + "/hook", "min_severity": "warning",
                         "retry_initial": "10ms", "retry_max": "100ms"}
                    ],
                }
            },
        }  # fmt: skip
        config = parse_config(central_raw, environ={}).config
        self.central = yield start_gateway(self, config)
        bus_raw = {
            "version": 3,
            "endpoints": [],
            "extra_config": {
                "busgw/bus": {
                    "id": BUS,
                    "state_dir": os.path.join(root, "bus", "state"),
                    "central": {
                        "url": self.central,
                        "allow_http": True,
                        "key": key_path,
                        "timeout": "5s",
                    },
                    "outbox": {"retry_initial": "10ms", "retry_max": "200ms"},
                }
            },
        }
        bus_config = parse_config(bus_raw, environ={}).config
        self.bus = yield start_gateway(
            self, bus_config, listen=f"tcp:{bus_port}:interface=127.0.0.1"
        )
        self.http = client(self)

    @inlineCallbacks
    def get(self, path: str) -> Any:
        response = yield self.http.get(self.central + path)
        # content(), not json(): treq's json() looks up a str header name,
        # a BytesWarning under -b.
        body = json.loads((yield response.content()))
        return response.code, body

    @inlineCallbacks
    def test_device_event_reaches_central_and_webhook(self) -> None:
        """A device event posted to the bus is delivered by its outbox to
        the central, listed by GET /fleet/events and posted to the webhook."""
        delivered = self.receiver.next()
        code, answer = yield post_event(
            self.http, self.bus, event_body("door-1", severity="critical")
        )
        self.assertEqual((code, answer), (202, {"id": "door-1"}))
        hooked = yield delivered
        self.assertEqual((hooked["id"], hooked["bus"]), ("door-1", BUS))
        self.assertEqual(self.receiver.received[0][0], f"{BUS}:door-1".encode())
        code, listed = yield self.get(f"/fleet/events?bus={BUS}")
        self.assertEqual(code, 200)
        [stored] = listed["events"]
        self.assertEqual(
            {k: stored[k] for k in ("id", "bus", "seq", "kind", "severity", "data")},
            {"id": "door-1", "bus": BUS, "seq": 1, "kind": "door_fault",
             "severity": "critical", "data": {"door": 2}},
        )  # fmt: skip
        self.assertIsNotNone(stored["bus_received_at"])
        code, one = yield self.get(f"/fleet/events/{BUS}/door-1")
        self.assertEqual((code, one["id"]), (200, "door-1"))

    @inlineCallbacks
    def test_forged_token_refused(self) -> None:
        """An event signed with a key that is not the bus's is refused
        with 401 and not stored."""
        now = reactor.seconds()  # the central's clock
        token = make_token(
            generate_key("ES256"), BUS, issuer=BUS, subject=BUS,
            audience="central", now=now,
        )  # fmt: skip
        body = {
            "id": "forged", "bus": BUS, "seq": 1, "kind": "door_fault",
            "severity": "critical", "occurred_at": "2025-06-01T08:30:00Z",
            "data": {},
        }  # fmt: skip
        response = yield self.http.post(
            self.central + "/events",
            data=json.dumps(body).encode(),
            headers={
                b"Authorization": [b"Bearer " + token.encode()],
                b"Content-Type": [b"application/json"],
            },
        )
        answer = json.loads((yield response.content()))
        self.assertEqual(response.code, 401)
        self.assertIn("signature", answer["error"])
        self.assertTrue(response.headers.hasHeader(b"www-authenticate"))
        code, listed = yield self.get("/fleet/events")
        self.assertEqual(listed["events"], [])
