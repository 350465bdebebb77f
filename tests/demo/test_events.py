"""The demo's event-raising devices and its fake central."""

import json
import os
import random

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.auth.sign import make_token
from busd.bus.event import parse_event
from busd.demo.events import DemoCentral, DeviceEvents, demo_events_service
from busd.testing import JSONBackend
from tests.bus._events_support import NOW, bus_block, gateway_config, write_key


class DeviceEventsTests(SynchronousTestCase):
    def test_posts_valid_events(self):
        """The devices post a schema-valid event within 10 s, then every
        20-60 s, and stop cleanly."""
        clock = Clock()
        clock.advance(NOW)
        gateway = JSONBackend({"/events": (202, {"id": "x"})})
        devices = DeviceEvents(
            "http://gw/events", StubTreq(gateway), clock, rng=random.Random(1)
        )
        devices.startService()
        clock.advance(10)
        clock.advance(60)
        self.assertEqual(len(gateway.requests), 2)
        for _, _, _, body in gateway.requests:
            event = parse_event(body, 65536)
            self.assertIn(
                event.kind, ("tyre_pressure", "door_fault", "passenger_alarm")
            )
        devices.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])


class DemoCentralTests(SynchronousTestCase):
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        self.key_path, self.key = write_key(self.dir)
        self.central = DemoCentral(self.key_path)
        self.stub = StubTreq(self.central)

    def post(self, key, event_id, seq):
        token = make_token(
            key,
            "FW-0042",
            issuer="FW-0042",
            subject="FW-0042",
            audience="central",
            now=NOW,
            ttl=10**10,
        )
        body = {
            "id": event_id,
            "seq": seq,
            "kind": "door_fault",
            "severity": "warning",
            "data": {},
        }
        d = self.stub.post(
            "http://central/events",
            data=json.dumps(body).encode(),
            headers={
                b"Authorization": [b"Bearer " + token.encode()],
                b"Idempotency-Key": [event_id.encode()],
            },
        )
        return self.successResultOf(d).code

    def test_verifies_and_dedupes(self):
        """Events signed by the bus key are kept once per key; a token
        from another key is refused with 401."""
        self.assertEqual(self.post(self.key, "e1", 1), 200)
        self.assertEqual(self.post(self.key, "e1", 1), 200)
        self.assertEqual(self.post(self.key, "e2", 2), 200)
        other = write_key(self.dir, "other")[1]
        self.assertEqual(self.post(other, "e3", 3), 401)
        self.assertEqual(list(self.central.received), ["e1", "e2"])
        self.assertEqual(self.central.deliveries, 3)


class ServiceTests(SynchronousTestCase):
    def test_central_only_on_loopback_http(self):
        """The fake central listens only where a loopback http:// central
        is configured; the devices always run."""
        dir_ = os.path.abspath(self.mktemp())
        key_path, _ = write_key(dir_)
        local = gateway_config(
            bus_block(
                dir_,
                key_path,
                central={
                    "url": "http://127.0.0.1:9190",
                    "allow_http": True,
                    "key": key_path,
                },
            )
        )
        remote = gateway_config(
            bus_block(
                dir_,
                key_path,
                central={"url": "https://central.example", "key": key_path},
            )
        )
        self.assertEqual(
            [s.name for s in demo_events_service(Clock(), local)],
            ["demo-central", "device-events"],
        )
        self.assertEqual(
            [s.name for s in demo_events_service(Clock(), remote)],
            ["device-events"],
        )
