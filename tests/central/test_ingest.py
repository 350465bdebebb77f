"""POST /events at the central: the bus's token, the event, dedupe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

import jwt
from twisted.trial.unittest import SynchronousTestCase

from busd.auth.sign import generate_key, make_token
from busd.bus.event import rfc3339
from busd.config._central import BusEntry
from tests.central._ingest_support import (
    BUS,
    NOW,
    Central,
    Hub,
    bus_token,
    central_config,
    event,
    write_bus_key,
)


class IngestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.key, self.jwks = write_bus_key(os.path.join(self.dir, "keys"))
        self.other_key, other_jwks = write_bus_key(
            os.path.join(self.dir, "keys"), "FW-0007"
        )
        fleet = (
            BusEntry(id=BUS, url="http://bus42:8080", key=self.jwks),
            BusEntry(id="FW-0007", url="http://bus7:8080", key=other_jwks),
            BusEntry(id="FW-0099", url="http://bus99:8080"),
        )
        self.config = central_config(
            os.path.join(self.dir, "state"), fleet, max_bytes=2048
        )
        self.hub = Hub()
        self.central = Central(self.config, hub=self.hub)
        self.addCleanup(self.central.stop)

    def post(self, body, token=None, **kwargs):
        return self.successResultOf(self.central.post(body, token, **kwargs))

    def good(self):
        return bus_token(self.key)


class TokenTests(IngestCase):
    def test_valid_event_stored(self) -> None:
        """A bus's event with its own token is stored: 201 with its id."""
        code, body, _ = self.post(event(), self.good())
        self.assertEqual((code, body), (201, {"id": "e-1", "stored": True}))

    def test_no_token(self) -> None:
        """Without a bearer token: 401 with a WWW-Authenticate challenge."""
        code, body, response = self.post(event())
        self.assertEqual(code, 401)
        self.assertIn(
            b"Bearer", response.headers.getRawHeaders(b"www-authenticate")[0]
        )

    def test_wrong_key(self) -> None:
        """A token signed with another key than the bus's is refused."""
        token = make_token(
            generate_key("ES256"), BUS, issuer=BUS, subject=BUS,
            audience="central", now=NOW,
        )  # fmt: skip
        code, body, response = self.post(event(), token)
        self.assertEqual(code, 401)
        self.assertIn("signature", body["error"])
        self.assertIn(
            b"invalid_token",
            response.headers.getRawHeaders(b"www-authenticate")[0],
        )

    def test_other_bus_key_for_this_bus(self) -> None:
        """A bus cannot speak for another: FW-0007's key signing iss FW-0042."""
        token = bus_token(self.other_key, BUS)
        code, _, _ = self.post(event(), token)
        self.assertEqual(code, 401)

    def test_unknown_bus(self) -> None:
        """An iss that is no bus of the fleet is refused (401)."""
        token = bus_token(generate_key("ES256"), "FW-9999")
        code, body, _ = self.post(event(bus_id="FW-9999"), token)
        self.assertEqual(code, 401)
        self.assertIn("no bus of the fleet", body["error"])

    def test_bus_without_key(self) -> None:
        """A bus of the fleet without a key gets 403."""
        token = bus_token(generate_key("ES256"), "FW-0099")
        code, _, _ = self.post(event(bus_id="FW-0099"), token)
        self.assertEqual(code, 403)

    def test_expired(self) -> None:
        """A token expired beyond the leeway is refused; within it, taken."""
        old = bus_token(self.key, now=NOW - 60 - 31)
        self.assertEqual(self.post(event(), old)[0], 401)
        recent = bus_token(self.key, now=NOW - 60 - 29)
        self.assertEqual(self.post(event(), recent)[0], 201)

    def test_not_yet_valid(self) -> None:
        """A token issued beyond the leeway in the future is refused."""
        token = bus_token(self.key, now=NOW + 120)
        self.assertEqual(self.post(event(), token)[0], 401)

    def test_no_exp(self) -> None:
        """A token without exp (valid forever) is refused."""
        token = bus_token(self.key, exp=None)
        code, body, _ = self.post(event(), token)
        self.assertEqual(code, 401)
        self.assertIn("exp", body["error"])

    def test_wrong_audience(self) -> None:
        """A token for another audience is refused."""
        token = bus_token(self.key, aud="bus-FW-0042")
        code, body, _ = self.post(event(), token)
        self.assertEqual(code, 401)
        self.assertIn("aud", body["error"])

    def test_sub_not_iss(self) -> None:
        """sub must be the sending bus."""
        token = bus_token(self.key, sub="someone-else")
        self.assertEqual(self.post(event(), token)[0], 401)

    def test_alg_none(self) -> None:
        """An unsigned token (alg none) is never accepted."""
        token = jwt.encode(
            {"iss": BUS, "sub": BUS, "aud": "central", "exp": int(NOW + 60)},
            None,
            algorithm="none",
            headers={"kid": BUS},
        )
        code, body, _ = self.post(event(), token)
        self.assertEqual(code, 401)
        self.assertIn("none", body["error"])

    def test_hmac_with_public_key(self) -> None:
        """HS256 signed with the public JWK's text is refused (the key's
        own algorithm is ES256)."""
        with open(self.jwks, "rb") as handle:
            secret = handle.read()

        def part(value: dict) -> bytes:
            raw = json.dumps(value).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=")

        claims = {"iss": BUS, "sub": BUS, "aud": "central", "exp": int(NOW + 60)}
        signed = part({"alg": "HS256", "kid": BUS}) + b"." + part(claims)
        mac = hmac.new(secret, signed, hashlib.sha256).digest()
        token = (
            signed + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")
        ).decode()
        self.assertEqual(self.post(event(), token)[0], 401)

    def test_garbage_token(self) -> None:
        """A bearer value that is no JWS is a 401."""
        self.assertEqual(self.post(event(), "not.a-token")[0], 401)

    def test_key_file_replaced(self) -> None:
        """A bus key file replaced on disk is read again (cache per mtime)."""
        self.assertEqual(self.post(event("a"), self.good())[0], 201)
        new_key, _ = write_bus_key(os.path.join(self.dir, "keys"))
        stat = os.stat(self.jwks)
        os.utime(self.jwks, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        self.assertEqual(self.post(event("b"), self.good())[0], 401)
        self.assertEqual(self.post(event("c"), bus_token(new_key))[0], 201)

    def test_pem_public_key(self) -> None:
        """A fleet entry's key may be a PEM public key."""
        from cryptography.hazmat.primitives import serialization

        pem = os.path.join(self.dir, "bus.pub.pem")
        with open(pem, "wb") as handle:
            handle.write(
                self.key.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                )
            )
        self.central.role.config = central_config(
            self.config.state_dir,
            (BusEntry(id=BUS, url="http://bus42:8080", key=pem),),
        )
        self.assertEqual(self.post(event(), self.good())[0], 201)

    def test_unreadable_key_file(self) -> None:
        """A key file that cannot be read is the central's fault: 503."""
        os.unlink(self.jwks)
        code, _, response = self.post(event(), self.good())
        self.assertEqual(code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"30"])
        self.flushLoggedErrors()


class BodyTests(IngestCase):
    def test_too_large(self) -> None:
        """A body over events.max_bytes is refused with 413."""
        body = event(data={"blob": "x" * 3000})
        self.assertEqual(self.post(body, self.good())[0], 413)

    def test_garbage_json(self) -> None:
        """A body that is not JSON is a 400 naming the body."""
        code, body, _ = self.post(b"{nope", self.good())
        self.assertEqual(code, 400)
        self.assertEqual(body["path"], "")
        self.assertIn("invalid JSON", body["error"])

    def test_bad_fields(self) -> None:
        """Each bad field is a 400 naming it."""
        cases = {
            "severity": event(severity="fatal"),
            "kind": event(kind="no spaces"),
            "occurred_at": event(occurred_at="yesterday"),
            "received_at": event(received_at="2025-13-01T00:00:00Z"),
            "data": event(data=[1]),
            "id": event(event_id="../x"),
            "seq": event(seq=-1),
        }
        for field, body in cases.items():
            code, answer, _ = self.post(body, self.good())
            self.assertEqual((code, answer["path"]), (400, field), field)
        missing = event()
        del missing["occurred_at"]
        self.assertEqual(self.post(missing, self.good())[1]["path"], "occurred_at")

    def test_other_bus_in_body(self) -> None:
        """An event naming another bus than the token's is a 422."""
        code, body, _ = self.post(event(bus_id="FW-0007"), self.good())
        self.assertEqual((code, body["path"]), (422, "bus"))

    def test_idempotency_key_mismatch(self) -> None:
        """An Idempotency-Key other than the event id is a 400."""
        code, body, _ = self.post(
            event(), self.good(), headers={b"Idempotency-Key": [b"e-2"]}
        )
        self.assertEqual((code, body["path"]), (400, "Idempotency-Key"))
        ok = self.post(event(), self.good(), headers={b"Idempotency-Key": [b"e-1"]})
        self.assertEqual(ok[0], 201)

    def test_unknown_members_ignored(self) -> None:
        """A member the central does not know does not refuse the event."""
        self.assertEqual(self.post(event(extra=1), self.good())[0], 201)


class DedupeTests(IngestCase):
    def test_replay_is_duplicate(self) -> None:
        """The same event again is answered 200 duplicate, stored once,
        published once."""
        self.assertEqual(self.post(event(), self.good())[0], 201)
        code, body, _ = self.post(event(), self.good())
        self.assertEqual(
            (code, body), (200, {"id": "e-1", "stored": True, "duplicate": True})
        )
        listed = self.successResultOf(self.central.get("/fleet/events"))[1]
        self.assertEqual(listed["count"], 1)
        self.assertEqual([k for k, _ in self.hub.published], ["event"])

    def test_same_data_other_order_is_duplicate(self) -> None:
        """A re-send whose data members come in another order is the same."""
        self.post(event(data={"a": 1, "b": 2}), self.good())
        body = json.dumps(event(data={"b": 2, "a": 1})).encode()
        self.assertEqual(self.post(body, self.good())[0], 200)

    def test_different_content_conflicts(self) -> None:
        """Another event under a used id is a 409, the first one kept."""
        self.post(event(), self.good())
        code, body, _ = self.post(event(severity="critical"), self.good())
        self.assertEqual(code, 409)
        stored = self.successResultOf(self.central.get(f"/fleet/events/{BUS}/e-1"))
        self.assertEqual(stored[1]["severity"], "warning")

    def test_same_id_other_bus(self) -> None:
        """Ids are per bus: another bus may use the same id."""
        self.post(event(), self.good())
        other = bus_token(self.other_key, "FW-0007")
        self.assertEqual(self.post(event(bus_id="FW-0007"), other)[0], 201)

    def test_published_after_store(self) -> None:
        """The hub gets the stored event with the central's received_at and
        the bus's as bus_received_at."""
        self.central.clock.advance(0.5)
        self.post(event(), self.good())
        [(kind, data)] = self.hub.published
        self.assertEqual(kind, "event")
        self.assertEqual(data["received_at"], rfc3339(NOW + 0.5))
        self.assertEqual(data["bus_received_at"], "2025-06-01T08:30:01.250Z")
        self.assertEqual(
            {k: data[k] for k in ("id", "bus", "seq", "kind", "data")},
            {"id": "e-1", "bus": BUS, "seq": 7, "kind": "door_fault",
             "data": {"door": 2}},
        )  # fmt: skip
