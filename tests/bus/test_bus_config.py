"""extra_config."busgw/bus": defaults, every key, and errors with paths."""

import ipaddress
import os

from twisted.trial.unittest import SynchronousTestCase

from busd.config.load import parse_config
from busd.errors import ConfigError
from tests.bus._events_support import bus_block, write_jwks, write_key

NS = "extra_config.busgw/bus"


class BusConfigCase(SynchronousTestCase):
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        self.key, self.key_obj = write_key(self.dir)

    def load(self, block, endpoints=(), strict=False, **extra):
        raw = {
            "version": 3,
            "endpoints": list(endpoints),
            "extra_config": {"busgw/bus": block, **extra},
        }
        return parse_config(raw, environ={}, strict=strict)

    def problems(self, block, **kw):
        err = self.assertRaises(ConfigError, self.load, block, **kw)
        return {(p.path, p.severity): p.message for p in err.problems}


class ValidTests(BusConfigCase):
    def test_defaults(self):
        """A minimal block gets every documented default."""
        bus = self.load(bus_block("state", self.key)).config.bus
        self.assertEqual(bus.id, "FW-0042")
        self.assertEqual(bus.state_dir, os.path.abspath("state"))
        c = bus.central
        self.assertEqual(
            (c.events_url, c.kid, c.audience, c.token_ttl, c.timeout),
            ("http://central.test/events", "FW-0042", "central", 60.0, 10.0),
        )
        o = bus.outbox
        self.assertEqual(
            (o.max_events, o.max_bytes, o.max_event_bytes),
            (10000, 50 * 1024 * 1024, 65536),
        )
        self.assertEqual(
            (o.hard_max_events, o.hard_max_bytes),
            (12500, 50 * 1024 * 1024 * 5 // 4),
        )
        self.assertEqual((o.retry_initial, o.retry_max), (1.0, 300.0))
        e = bus.events
        self.assertEqual(
            (e.path, e.device_token, e.ack_token), ("/events", None, None)
        )
        self.assertEqual(
            e.allow_from,
            (
                ipaddress.ip_network("127.0.0.0/8"),
                ipaddress.ip_network("::1/128"),
            ),
        )

    def test_every_key(self):
        """Every key is read, with strict mode and no warning."""
        jwks = write_jwks(self.dir, self.key_obj, "dev")
        block = bus_block(
            "state",
            self.key,
            central={
                "url": "https://c.example/fleet/",
                "key": self.key,
                "kid": "bus-42",
                "audience": "fleet",
                "token_ttl": "2m",
                "timeout": "3s",
                "generate_key": False,
                "allow_http": False,
            },
            outbox={
                "max_events": 10,
                "max_bytes": 4096,
                "hard_max_events": 20,
                "hard_max_bytes": 8192,
                "max_event_bytes": 1024,
                "retry_initial": "10ms",
                "retry_max": "1s",
            },
            events={
                "path": "/bus/events",
                "allow_from": ["192.168.4.0/24", "10.1.2.3"],
                "device_token": {"alg": "ES256", "jwk_local_path": jwks},
                "ack_token": {"alg": "ES256", "jwk_local_path": jwks},
            },
        )
        result = self.load(block, strict=True)
        bus = result.config.bus
        self.assertEqual(result.warnings, ())
        self.assertEqual(
            bus.central.events_url, "https://c.example/fleet/events"
        )
        self.assertEqual(
            (bus.central.kid, bus.central.token_ttl), ("bus-42", 120.0)
        )
        self.assertEqual(
            (bus.outbox.hard_max_events, bus.outbox.retry_initial), (20, 0.01)
        )
        self.assertEqual(
            bus.events.allow_from[1], ipaddress.ip_network("10.1.2.3/32")
        )
        self.assertEqual(bus.events.device_token.alg, "ES256")

    def test_generate_key_allows_missing(self):
        """A missing key file is fine with generate_key."""
        block = bus_block("state", os.path.join(self.dir, "new.key.pem"))
        block["central"]["generate_key"] = True
        self.assertTrue(self.load(block).config.bus.central.generate_key)


class ErrorTests(BusConfigCase):
    def test_required(self):
        """id, state_dir, central.url and central.key are required."""
        problems = self.problems({"central": {}})
        for key in ("id", "state_dir", "central.url", "central.key"):
            self.assertIn(
                "missing required key", problems[(f"{NS}.{key}", "error")]
            )

    def test_bad_values(self):
        """Each bad value is an error naming its JSON path."""
        block = bus_block(
            "state",
            os.path.join(self.dir, "missing.pem"),
            id="bus 42",
            outbox={
                "max_events": 0,
                "hard_max_bytes": 2048,
                "max_bytes": 4096,
                "retry_initial": "5s",
                "retry_max": "1s",
            },
            events={"path": "events", "allow_from": ["10.0.0.0/8", "nowhere"]},
        )
        block["central"]["url"] = "http://c.example"
        del block["central"]["allow_http"]
        problems = self.problems(block)
        expected = {
            f"{NS}.id": "invalid bus id",
            f"{NS}.central.url": "must be https://",
            f"{NS}.central.key": "make one with busgw keys generate",
            f"{NS}.outbox.max_events": "must be at least 1",
            f"{NS}.outbox.hard_max_bytes": "must be at least max_bytes",
            f"{NS}.outbox.retry_max": "must not be less than retry_initial",
            f"{NS}.events.path": "plain path",
            f"{NS}.events.allow_from[1]": "not an IP network",
        }
        for path, text in expected.items():
            self.assertIn(text, problems[(path, "error")], path)

    def test_unknown_keys_warn(self):
        """Unknown keys are warnings, errors with --strict."""
        block = bus_block("state", self.key, colour="red")
        block["central"]["urls"] = "x"
        result = self.load(block)
        paths = {p.path for p in result.warnings}
        self.assertEqual(paths, {f"{NS}.colour", f"{NS}.central.urls"})
        self.assertIn(
            (f"{NS}.colour", "error"), self.problems(block, strict=True)
        )

    def test_path_collisions(self):
        """The events path may not take an endpoint's path, sit above one,
        be shadowed by a placeholder endpoint, or use a built-in path."""

        def endpoint(path):
            return {
                "endpoint": path,
                "backend": [{"host": ["http://d:1"], "url_pattern": "/x"}],
            }

        for path, given in (
            ("/events", None),
            ("/events/today", None),
            ("/{any}", None),
            ("/__health/x", "/__health/x"),
        ):
            block = bus_block("state", self.key)
            if given:
                block["events"] = {"path": given}
            endpoints = [] if path.startswith("/__") else [endpoint(path)]
            problems = self.problems(block, endpoints=endpoints)
            where = f"{NS}.events.path" if given else NS
            self.assertIn((where, "error"), problems, path)
