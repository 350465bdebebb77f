"""extra_config."busgw/central": the fleet (inline and file), the poll,
signing, events and webhooks, their defaults and problems."""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.trial.unittest import SynchronousTestCase

from busd.auth.sign import generate_key, private_pem, public_jwks
from busd.config._central import (
    BusEntry,
    CentralEventsConfig,
    PollConfig,
    PolledEndpoint,
    WebhookConfig,
)
from busd.config._fleet import key_problem
from tests.config._support import endpoint as ep, load, problems, service as svc, table_tests

E, W = "error", "warning"
C = "extra_config.busgw/central"


def central(**keys: Any) -> dict:
    """A config with endpoint /status and busgw/central."""
    block = {"state_dir": "/var/lib/busgw", **keys}
    return svc(ep("/status"), extra_config={"busgw/central": block})


def bus(bus_id: str = "FW-0042", **keys: Any) -> dict:
    return {"id": bus_id, "url": "http://10.8.0.42:8000", **keys}


# fmt: off
CENTRAL_PROBLEMS = [
    ("no_state_dir", "state_dir is required.",
     svc(ep(), extra_config={"busgw/central": {}}), E, C + ".state_dir",
     "missing required key"),
    ("bus_no_url", "A bus needs a URL.",
     central(fleet=[{"id": "FW-1"}]), E, C + ".fleet[0].url",
     "missing required key"),
    ("bus_bad_url", "A bus URL is http(s).",
     central(fleet=[bus(url="ftp://x")]), E, C + ".fleet[0].url",
     "not an http(s) URL"),
    ("bus_bad_id", "A bus id is a plain word.",
     central(fleet=[bus("FW 1")]), E, C + ".fleet[0].id", "invalid bus id"),
    ("bus_duplicate", "Bus ids are unique.",
     central(fleet=[bus(), bus()]), E, C + ".fleet[1].id",
     "duplicate bus id"),
    ("bus_missing_key", "A named key file must exist.",
     central(fleet=[bus(key="/nonexistent/k.json")]), E, C + ".fleet[0].key",
     "cannot read"),
    ("bus_label_type", "Labels are strings.",
     central(fleet=[bus(labels={"line": ["a"]})]), E,
     C + ".fleet[0].labels.line", "expected a string"),
    ("fleet_file_missing", "A fleet file must be readable.",
     central(fleet_file="/nonexistent/fleet.json"), E, C + ".fleet_file",
     "cannot read"),
    ("jitter_range", "jitter is a fraction.",
     central(poll={"jitter": 2}), E, C + ".poll.jitter", "between 0 and 1"),
    ("interval_zero", "interval is above zero.",
     central(poll={"interval": "0s"}), E, C + ".poll.interval", "above zero"),
    ("offline_before_stale", "offline_after >= stale_after.",
     central(poll={"stale_after": "30s", "offline_after": "10s"}), E,
     C + ".poll.offline_after", "not be less than stale_after"),
    ("endpoint_is_health", "The health path is polled already.",
     central(poll={"endpoints": ["/health"]}), E, C + ".poll.endpoints[0]",
     "polled already"),
    ("endpoint_reserved_name", "A polled endpoint may not be named buses.",
     central(poll={"endpoints": ["/buses"]}), E, C + ".poll.endpoints[0]",
     "reserved"),
    ("endpoint_bad_path", "Polled paths are plain.",
     central(poll={"endpoints": ["/a/{b}"]}), E, C + ".poll.endpoints[0]",
     "plain path"),
    ("values_unknown_endpoint", "A value reads a polled endpoint.",
     central(poll={"values": {"fuel": "vehicle.fuel"}}), E,
     C + ".poll.values.fuel", "polled endpoint's name"),
    ("signing_no_kid", "Signing needs a kid.",
     central(signing={"key": "/nonexistent/c.pem", "generate_key": True}), E,
     C + ".signing.kid", "missing required key"),
    ("signing_missing_key", "Without generate_key the key must exist.",
     central(signing={"key": "/nonexistent/c.pem", "kid": "c"}), E,
     C + ".signing.key", "cannot read"),
    ("events_collide", "The events path may not be an endpoint's.",
     central(events={"path": "/status"}), E, C + ".events.path",
     "collides with endpoints[0]"),
    ("webhook_severity", "min_severity is a severity.",
     central(webhooks=[{"url": "http://127.0.0.1:9/h", "min_severity": "x"}]),
     E, C + ".webhooks[0].min_severity", "want info, warning or critical"),
    ("webhook_url", "A webhook needs an http(s) URL.",
     central(webhooks=[{"url": "mailto:x"}]), E, C + ".webhooks[0].url",
     "http(s) URL"),
    ("endpoint_under_fleet", "No endpoint may go under /fleet.",
     svc(ep("/fleet/x"), extra_config={"busgw/central": {"state_dir": "/s"}}),
     E, C, "which the central serves itself"),
    ("signing_shared_audience", "An audience without {id} is a warning.",
     central(signing={"key": "/nonexistent/c.pem", "kid": "c", "generate_key": True,
                      "audience": "buses"}), W, C + ".signing.audience",
     "every bus accepts the same token"),
    ("unknown_key", "An unknown key is a warning.",
     central(pol={}), W, C + ".pol", 'did you mean "poll"'),
]
# fmt: on


class CentralConfigTests(SynchronousTestCase):
    """busgw/central as the loader reads it."""

    locals().update(table_tests(CENTRAL_PROBLEMS))

    def test_defaults(self) -> None:
        """An empty fleet, /health and /status every 5 s, events stored in
        the state directory, no signing, the dashboard on."""
        config = load(self, central()).config.central
        assert config is not None
        self.assertEqual(config.fleet, ())
        self.assertEqual(config.poll, PollConfig())
        self.assertEqual(config.signing, None)
        self.assertEqual(
            config.events,
            CentralEventsConfig(store="/var/lib/busgw/central-events.sqlite"),
        )
        self.assertTrue(config.dashboard)

    def test_poll_thresholds_follow_interval(self) -> None:
        """Without explicit thresholds, a slow poll keeps sane ones: stale
        after 3 intervals, offline after 4 x stale."""
        config = load(self, central(poll={"interval": "30s"})).config.central
        assert config is not None
        self.assertEqual(
            (config.poll.stale_after, config.poll.offline_after), (90.0, 360.0)
        )

    def test_everything(self) -> None:
        """Every key read: polled endpoints by path or name, values, signing
        with an existing key, a webhook with headers."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        key = generate_key("ES256")
        pem = os.path.join(folder, "central.key.pem")
        with open(pem, "wb") as handle:
            handle.write(private_pem(key))
        jwks = os.path.join(folder, "FW-1.jwks.json")
        with open(jwks, "w") as handle:
            json.dump(public_jwks(key, "FW-1"), handle)
        raw = central(
            fleet=[bus("FW-1", key=jwks, labels={"line": "FW-12", "n": 3})],
            poll={
                "interval": "2s", "timeout": "1s", "concurrency": 8,
                "jitter": 0.5, "endpoints": ["/status", {"name": "loc", "path": "/location"}],
                "values": {"fuel": "status.vehicle.fuel"}, "backoff_max": "1m",
                "stale_after": "6s", "offline_after": "20s",
            },
            signing={"key": pem, "kid": "central-1", "audience": "{id}", "ttl": "30s"},
            events={"path": "/ingest", "store": "ev.db", "leeway": "1m"},
            webhooks=[{"url": "https://hooks.example/x", "kinds": ["crash"],
                       "min_severity": "critical", "headers": {"X-Token": "s"}}],
            dashboard=False,
            passthrough_timeout="30s",
        )
        config = load(self, raw).config.central
        assert config is not None
        self.assertEqual(
            config.fleet,
            (BusEntry(id="FW-1", url="http://10.8.0.42:8000", key=jwks),),
        )
        self.assertEqual(config.fleet[0].labels, {"line": "FW-12", "n": "3"})
        self.assertEqual(
            config.poll.endpoints,
            (PolledEndpoint(name="status", path="/status"),
             PolledEndpoint(name="loc", path="/location")),
        )
        self.assertEqual(config.poll.values, (("fuel", "status.vehicle.fuel"),))
        self.assertEqual(
            (config.poll.interval, config.poll.concurrency, config.poll.jitter,
             config.poll.stale_after, config.poll.offline_after),
            (2.0, 8, 0.5, 6.0, 20.0),
        )
        assert config.signing is not None
        self.assertEqual(config.signing.audience_for("FW-1"), "FW-1")
        self.assertEqual(config.events.store, "/var/lib/busgw/ev.db")
        self.assertEqual(config.events.leeway, 60.0)
        self.assertEqual(
            config.webhooks,
            (WebhookConfig(url="https://hooks.example/x", kinds=("crash",),
                           min_severity="critical", headers=(("X-Token", "s"),)),),
        )
        self.assertFalse(config.dashboard)
        self.assertEqual(config.passthrough_timeout, 30.0)

    def test_fleet_file(self) -> None:
        """The fleet file's buses follow the inline ones; its problems are
        named with the file and the bus's JSON path."""
        path = self.mktemp()
        with open(path, "w") as handle:
            json.dump({"buses": [bus("FW-2"), {"id": "FW-3", "url": "nope"}]}, handle)
        found = problems(central(fleet=[bus("FW-1")], fleet_file=path))
        self.assertEqual(
            [(p[0], p[1]) for p in found],
            [(E, f"{os.path.abspath(path)}: buses[1].url")],
        )
        with open(path, "w") as handle:
            json.dump([bus("FW-2"), bus("FW-1")], handle)
        found = problems(central(fleet=[bus("FW-1")], fleet_file=path))
        self.assertIn("duplicate bus id", found[0][2])
        with open(path, "w") as handle:
            json.dump([bus("FW-2")], handle)
        config = load(self, central(fleet=[bus("FW-1")], fleet_file=path)).config.central
        assert config is not None
        self.assertEqual([b.id for b in config.fleet], ["FW-1", "FW-2"])
        self.assertEqual(config.bus("FW-2"), config.fleet[1])
        self.assertIsNone(config.bus("FW-9"))

    def test_key_problem(self) -> None:
        """A bus key is a JWK set, a JWK or a PEM public key."""
        folder = self.mktemp()
        os.makedirs(folder)
        key = generate_key("ES256")
        cases = {
            "set.json": json.dumps(public_jwks(key, "k")).encode(),
            "one.json": json.dumps(public_jwks(key, "k")["keys"][0]).encode(),
            "pub.pem": key.public_key().public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
            ),
            "bad.json": b'{"keys": 1}',
            "bad.pem": b"hello",
        }
        for name, data in cases.items():
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(data)
        for good in ("set.json", "one.json", "pub.pem"):
            self.assertIsNone(key_problem(os.path.join(folder, good)), good)
        for bad in ("bad.json", "bad.pem"):
            self.assertIsNotNone(key_problem(os.path.join(folder, bad)), bad)
