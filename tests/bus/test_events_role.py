"""The events role through the router: POST /events answers, who may post,
acknowledgements, and how it plugs into build_roles."""

import json
import os

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.app import GatewayApp
from busd.auth.sign import make_token
from busd.bus.events_role import EventsRole
from busd.bus.key import jwks_path, load_or_generate_key
from busd.config.model import GatewayConfig
from busd.roles import build_roles
from busd.testing import JSONBackend
from tests.bus._events_support import (
    EVENT,
    NOW,
    bus_block,
    gateway_config,
    sync_run,
    write_jwks,
    write_key,
)


class RoleCase(SynchronousTestCase):
    def start(self, state_dir=None, **block):
        self.dir = os.path.abspath(self.mktemp())
        key_path, self.bus_key = write_key(self.dir)
        self.device_key = write_key(self.dir, "device")[1]
        self.jwks = write_jwks(self.dir, self.device_key, "dev")
        block = {k: (v(self) if callable(v) else v) for k, v in block.items()}
        config = gateway_config(
            bus_block(
                state_dir or os.path.join(self.dir, "state"), key_path, **block
            )
        )
        self.clock = Clock()
        self.clock.advance(NOW)
        self.central = JSONBackend({"/events": (200, {})})
        self.role = EventsRole(
            config,
            None,
            self.clock,
            run=sync_run,
            client=StubTreq(self.central),
        )
        self.role.startService()
        # Cleanups run last-first: stop, then check no timer was left.
        self.addCleanup(
            lambda: self.assertEqual(self.clock.getDelayedCalls(), [])
        )
        self.addCleanup(self.role.stopService)
        app = GatewayApp(config, StubTreq(JSONBackend({})), self.clock)
        self.role.install(app)
        self.stub = StubTreq(app.resource())

    def post(self, path="/events", body=None, headers=None, raw=None):
        data = (
            raw
            if raw is not None
            else json.dumps(body if body is not None else EVENT).encode()
        )
        d = self.stub.post(
            "http://bus" + path, data=data, headers=headers or {}
        )
        self.stub.flush()
        response = self.successResultOf(d)
        return (
            response.code,
            json.loads(self.successResultOf(response.content())),
            response,
        )

    def token(self, key=None, aud="bus-FW-0042"):
        return make_token(
            key or self.device_key,
            "dev",
            issuer="fleet",
            subject="x",
            audience=aud,
            now=NOW,
        )


def validator(case):
    return {
        "alg": "ES256",
        "jwk_local_path": case.jwks,
        "audience": ["bus-FW-0042"],
    }


class PostTests(RoleCase):
    def test_accepted_and_delivered(self):
        """A valid event gets 202 with its id, and reaches the central."""
        self.start()
        code, body, _ = self.post(body=dict(EVENT, id="tyre-1"))
        self.assertEqual((code, body), (202, {"id": "tyre-1"}))
        (request,) = self.central.requests
        self.assertEqual(json.loads(request[3])["id"], "tyre-1")

    def test_same_id_same_answer(self):
        """Posting the same event twice answers the same and stores it once;
        another event under that id is refused with 409."""
        self.start()
        first = self.post(body=dict(EVENT, id="door-1"))[:2]
        again = self.post(body=dict(EVENT, id="door-1"))[:2]
        self.assertEqual(first, again)
        code, body = self.post(body=dict(EVENT, id="door-1", kind="other"))[:2]
        self.assertEqual((code, body["status"]), (409, 409))
        self.assertEqual(self.role.pressure()["stored"], 1)
        self.assertEqual(len(self.central.requests), 1)

    def test_bad_events(self):
        """Malformed, wrongly typed and oversized events get 400 with the
        reason and the field's path."""
        self.start(outbox={"max_event_bytes": 512})
        code, body, _ = self.post(raw=b"{not json")
        self.assertEqual((code, body["path"]), (400, ""))
        self.assertIn("invalid JSON", body["error"])
        code, body, _ = self.post(body=dict(EVENT, data="text"))
        self.assertEqual(
            (code, body),
            (
                400,
                {
                    "error": "data: expected an object, got a string",
                    "path": "data",
                    "status": 400,
                },
            ),
        )
        code, body, _ = self.post(body=dict(EVENT, data={"x": "y" * 600}))
        self.assertEqual(code, 400)
        self.assertIn("event too large", body["error"])
        self.assertEqual(self.role.pressure()["stored"], 0)

    def test_full_is_503(self):
        """A full outbox answers 503 outbox_full with Retry-After."""
        self.start(outbox={"max_events": 1, "hard_max_events": 1})
        self.central.routes["/events"] = (503, {})
        self.assertEqual(self.post()[0], 202)
        code, body, response = self.post()
        self.assertEqual(
            (code, body), (503, {"error": "outbox_full", "status": 503})
        )
        self.assertEqual(
            response.headers.getRawHeaders(b"Retry-After"), [b"60"]
        )

    def test_broken_disk_is_503(self):
        """A state dir that cannot hold the database answers 503, not 202."""
        blocker = os.path.abspath(self.mktemp())
        open(blocker, "w").close()
        self.start(state_dir=blocker)
        code, body, _ = self.post()
        self.assertEqual(
            (code, body), (503, {"error": "outbox_unavailable", "status": 503})
        )


class AccessTests(RoleCase):
    def test_refused_outside_allow_from(self):
        """Outside allow_from and with no device token configured: 403."""
        self.start(events={"allow_from": ["10.0.0.0/8"]})
        self.assertEqual(
            self.post()[:2],
            (403, {"error": "not allowed from this address", "status": 403}),
        )

    def test_device_token(self):
        """Outside allow_from a valid device token is required."""
        self.start(
            events=lambda c: {
                "allow_from": ["10.0.0.0/8"],
                "device_token": validator(c),
            }
        )
        self.assertEqual(self.post()[0], 401)
        bearer = {b"Authorization": [b"Bearer " + self.token().encode()]}
        self.assertEqual(self.post(headers=bearer)[0], 202)
        wrong = {
            b"Authorization": [b"Bearer " + self.token(aud="other").encode()]
        }
        self.assertEqual(self.post(headers=wrong)[0], 401)


class AckTests(RoleCase):
    def test_ack_with_token(self):
        """The central's acknowledgement (with a valid token) ends an
        event's activity; unknown ids are 404, bad tokens 401."""
        self.start(events=lambda c: {"ack_token": validator(c)})
        self.post(
            body=dict(EVENT, id="crash-1", kind="crash", severity="critical")
        )
        self.assertEqual(len(self.role.active("crash")), 1)
        bearer = {b"Authorization": [b"Bearer " + self.token().encode()]}
        self.assertEqual(self.post("/events/crash-1/ack", raw=b"")[0], 401)
        self.assertEqual(
            self.post("/events/crash-1/ack", raw=b"", headers=bearer)[:2],
            (200, {"id": "crash-1", "acknowledged": True}),
        )
        self.assertEqual(self.role.active("crash"), [])
        self.assertEqual(
            self.post("/events/nope/ack", raw=b"", headers=bearer)[0], 404
        )

    def test_no_validator_no_ack(self):
        """Without any validator acknowledgements are refused (403)."""
        self.start()
        self.post(body=dict(EVENT, id="e1"))
        self.assertEqual(self.post("/events/e1/ack", raw=b"")[0], 403)

    def test_service_validator_is_default(self):
        """Without events.ack_token the service's busgw/auth validator checks acks."""
        dir_ = os.path.abspath(self.mktemp())
        key_path, _ = write_key(dir_)
        key = write_key(dir_, "central")[1]
        jwks = write_jwks(dir_, key, "dev")
        config = gateway_config(
            bus_block(os.path.join(dir_, "state"), key_path),
            extra_config={
                "busgw/auth": {
                    "validator": {"alg": "ES256", "jwk_local_path": jwks}
                }
            },
        )
        self.assertEqual(config.bus.events.ack_token, config.default_auth)
        self.assertIsNotNone(config.bus.events.ack_token)


class KeyTests(RoleCase):
    def test_key_retried(self):
        """A key that cannot be made (its directory is blocked) stops
        delivery, not storage; it is tried again every retry_max."""
        blocker = os.path.abspath(self.mktemp())
        open(blocker, "w").close()
        path = os.path.join(blocker, "bus.key.pem")
        self.start(
            central={
                "url": "http://central.test",
                "allow_http": True,
                "key": path,
                "generate_key": True,
            }
        )
        self.assertEqual(self.post()[0], 202)
        self.assertIsNone(self.role.sender)
        os.unlink(blocker)
        self.clock.advance(300)
        self.assertIsNotNone(self.role.sender)
        self.assertEqual(len(self.central.requests), 1)


class WiringTests(SynchronousTestCase):
    def test_build_roles(self):
        """build_roles adds the events role when busgw/bus is set, and it
        offers active/pressure/raise_event to the health role."""
        dir_ = os.path.abspath(self.mktemp())
        key_path, _ = write_key(dir_)
        config = gateway_config(
            bus_block(os.path.join(dir_, "state"), key_path)
        )
        roles = build_roles(config, Clock(), Clock())
        role = next((r for r in roles if hasattr(r, "active")), None)
        self.assertIsInstance(role, EventsRole)
        self.assertEqual(role.name, "events")
        no_bus = build_roles(GatewayConfig(), Clock(), Clock())
        self.assertFalse(any(isinstance(r, EventsRole) for r in no_bus))

    def test_generated_key(self):
        """With generate_key a missing key is created (0600) with its JWKS,
        and an existing one is loaded, never replaced."""
        path = os.path.join(os.path.abspath(self.mktemp()), "bus.key.pem")
        key = load_or_generate_key(path, True, "FW-0042")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(jwks_path(path)) as handle:
            self.assertEqual(json.load(handle)["keys"][0]["kid"], "FW-0042")
        again = load_or_generate_key(path, True, "FW-0042")
        self.assertEqual(again.private_numbers(), key.private_numbers())
        self.assertRaises(
            ValueError, load_or_generate_key, path + ".missing", False, "x"
        )
