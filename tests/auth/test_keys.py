"""JWK sets: which keys fit an algorithm, and jwk_url fetching with its
cache, refetch on an unknown kid, cooldown and failures (StubTreq, Clock)."""

from __future__ import annotations

import json
from typing import Any, List

from cryptography.hazmat.primitives.asymmetric import ec
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from busd.auth.keys import (
    JWKSError,
    KeyUnavailable,
    load_jwks_file,
    parse_jwks,
)
from busd.auth.remote import JWKS_TIMEOUT, RemoteKeys
from tests.auth._support import (
    SECRET,
    ec_key,
    ed_key,
    jwks,
    oct_jwk,
    public_jwk,
    rsa_key,
)

URL = "https://central.example/jwks.json"


class ParseTests(SynchronousTestCase):
    def test_fitting_keys_kept(self):
        """Keys of the algorithm's family are kept, in order, by kid."""
        keys = parse_jwks(
            jwks(public_jwk(ec_key(), "a"), public_jwk(ec_key("b"), "b")),
            "ES256",
        )
        self.assertEqual([k.kid for k in keys.keys], ["a", "b"])
        self.assertEqual(keys.find("b").kty, "EC")
        self.assertIsNone(keys.find("c"))

    def test_public_keys_never_hmac_secrets(self):
        """For HS256, RSA and EC public keys are skipped: no key is left."""
        data = jwks(public_jwk(rsa_key(), "r"), public_jwk(ec_key(), "e"))
        with self.assertRaises(JWKSError) as caught:
            parse_jwks(data, "HS256")
        self.assertIn("kty 'RSA' does not fit HS256", str(caught.exception))
        self.assertIn("kty 'EC' does not fit HS256", str(caught.exception))

    def test_wrong_curve_alg_use(self):
        """A P-384 key for ES256, a key for another alg, or an encryption
        key is skipped; the fitting one is kept."""
        p384 = ec.generate_private_key(ec.SECP384R1())
        keys = parse_jwks(
            jwks(
                public_jwk(p384, "p384"),
                public_jwk(ec_key(), "other-alg", alg="ES384"),
                public_jwk(ec_key(), "enc", use="enc"),
                public_jwk(ec_key(), "ok", alg="ES256", use="sig"),
            ),
            "ES256",
        )
        self.assertEqual([k.kid for k in keys.keys], ["ok"])

    def test_weak_keys_skipped(self):
        """An HMAC secret shorter than the hash is skipped."""
        with self.assertRaises(JWKSError) as caught:
            parse_jwks(jwks(oct_jwk(b"short", "s")), "HS256")
        self.assertIn("too short", str(caught.exception))
        self.assertEqual(
            len(parse_jwks(jwks(oct_jwk(SECRET, "s")), "HS256").keys), 1
        )

    def test_no_secret_in_errors(self):
        """A broken oct key's error never quotes its secret."""
        bad = {"kty": "oct", "k": "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr!!"}
        with self.assertRaises(JWKSError) as caught:
            parse_jwks(jwks(bad), "HS256")
        self.assertNotIn("c2VjcmV0", str(caught.exception))

    def test_not_a_set(self):
        """Something other than {"keys": [...]} is refused."""
        for data in ([], {"keys": {}}, {"kty": "EC"}):
            with self.assertRaises(JWKSError):
                parse_jwks(data, "ES256")

    def test_kid_lookup(self):
        """A token without kid takes the only key of a set."""
        keys = parse_jwks(jwks(public_jwk(ed_key(), "only")), "EdDSA")
        self.assertEqual(keys.find(None).kid, "only")
        two = parse_jwks(
            jwks(public_jwk(ed_key(), "a"), public_jwk(ed_key("2"), "b")),
            "EdDSA",
        )
        self.assertIsNone(two.find(None))

    def test_file(self):
        """A JWK set file is read; a missing or non-JSON one is an error."""
        path = self.mktemp()
        with open(path, "w") as handle:
            json.dump(jwks(public_jwk(ec_key(), "k1")), handle)
        self.assertEqual(load_jwks_file(path, "ES256").find("k1").kid, "k1")
        with self.assertRaises(JWKSError):
            load_jwks_file(path + ".missing", "ES256")
        with open(path, "w") as handle:
            handle.write("{")
        with self.assertRaises(JWKSError):
            load_jwks_file(path, "ES256")


class JWKSServer(Resource):
    """Serves ``body`` with ``status``; with ``hold``, keeps requests open
    until ``release()``."""

    isLeaf = True

    def __init__(self, body: Any, status: int = 200):
        super().__init__()
        self.body = body
        self.status = status
        self.hits = 0
        self.hold = False
        self.held: List[Any] = []

    def render_GET(self, request):
        self.hits += 1
        if self.hold:
            self.held.append(request)
            return NOT_DONE_YET
        request.setResponseCode(self.status)
        body = self.body
        return body if isinstance(body, bytes) else json.dumps(body).encode()

    def release(self):
        held, self.held = self.held, []
        for request in held:
            request.write(json.dumps(self.body).encode())
            request.finish()


class RemoteTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.server = JWKSServer(jwks(public_jwk(ec_key(), "k1")))
        self.stub = StubTreq(self.server)
        self.keys = RemoteKeys(
            URL,
            "ES256",
            self.stub,
            self.clock,
            cache_duration=900,
            cooldown=10,
        )
        self.events = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )

    def tearDown(self):
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def lookup(self, kid):
        d = self.keys.lookup(kid)
        self.stub.flush()
        return d

    def warnings(self):
        return [e for e in self.events if e["log_level"] == LogLevel.warn]

    def test_fetched_once_and_cached(self):
        """The set is fetched on first use and served from memory after."""
        self.assertEqual(self.successResultOf(self.lookup("k1")).kid, "k1")
        self.clock.advance(899)
        self.assertEqual(self.successResultOf(self.lookup("k1")).kid, "k1")
        self.assertEqual(self.server.hits, 1)

    def test_cache_expires(self):
        """After cache_duration the set is fetched again, in the background:
        the request is answered at once with the key at hand."""
        self.successResultOf(self.lookup("k1"))
        self.clock.advance(900)
        self.server.hold = True
        self.successResultOf(self.keys.lookup("k1"))
        self.stub.flush()
        self.assertEqual(self.server.hits, 2)
        self.successResultOf(self.keys.lookup("k1"))
        self.server.body = jwks(public_jwk(ec_key("new"), "k9"))
        self.server.release()
        self.stub.flush()
        self.assertEqual(self.server.hits, 2)
        self.failureResultOf(self.keys.lookup("k1"), KeyUnavailable)
        self.assertEqual(self.successResultOf(self.lookup("k9")).kid, "k9")

    def test_unknown_kid_refetch_with_cooldown(self):
        """An unknown kid refetches once; again only after the cooldown; a
        rotated key is then found."""
        self.successResultOf(self.lookup("k1"))
        self.clock.advance(10)
        self.failureResultOf(self.lookup("k2"), KeyUnavailable)
        self.assertEqual(self.server.hits, 2)
        self.failureResultOf(self.lookup("k2"), KeyUnavailable)
        self.failureResultOf(self.lookup("k3"), KeyUnavailable)
        self.assertEqual(self.server.hits, 2)  # within the cooldown
        self.server.body = jwks(
            public_jwk(ec_key(), "k1"), public_jwk(ec_key("two"), "k2")
        )
        self.clock.advance(10)
        self.assertEqual(self.successResultOf(self.lookup("k2")).kid, "k2")
        self.assertEqual(self.server.hits, 3)

    def test_concurrent_lookups_share_a_fetch(self):
        """Lookups during a fetch wait for it; one request is made."""
        self.server.hold = True
        first, second = self.lookup("k1"), self.lookup("k1")
        self.assertNoResult(first)
        self.server.release()
        self.stub.flush()
        self.assertEqual(self.successResultOf(first).kid, "k1")
        self.assertEqual(self.successResultOf(second).kid, "k1")
        self.assertEqual(self.server.hits, 1)

    def test_cancelled_waiter(self):
        """A cancelled lookup (client gone) leaves the fetch to the others."""
        self.server.hold = True
        first, second = self.lookup("k1"), self.lookup("k1")
        first.cancel()
        self.failureResultOf(first)
        self.server.release()
        self.stub.flush()
        self.assertEqual(self.successResultOf(second).kid, "k1")

    def test_failure_logged_once_and_refused(self):
        """A failing server: the lookup fails, the failure is logged once,
        and no new fetch is made before the cooldown."""
        self.server.status = 500
        failure = self.failureResultOf(self.lookup("k1"), KeyUnavailable)
        self.assertIn("HTTP status 500", str(failure.value))
        self.failureResultOf(self.lookup("k1"), KeyUnavailable)
        self.assertEqual(self.server.hits, 1)
        self.assertEqual(len(self.warnings()), 1)
        self.assertIn("could not be loaded", self.warnings()[0]["log_format"])
        self.server.status = 200
        self.clock.advance(10)
        self.assertEqual(self.successResultOf(self.lookup("k1")).kid, "k1")

    def test_not_a_jwks(self):
        """A non-JSON answer is a load failure, logged with its reason."""
        self.server.body = b"<html>"
        self.failureResultOf(self.lookup("k1"), KeyUnavailable)
        self.assertEqual(self.warnings()[0]["reason"], "the answer is not JSON")

    def test_stale_keys_kept_on_failure(self):
        """When a refresh fails, the last good keys keep working."""
        self.successResultOf(self.lookup("k1"))
        self.clock.advance(900)
        self.server.status = 503
        self.assertEqual(self.successResultOf(self.lookup("k1")).kid, "k1")
        self.assertEqual(len(self.warnings()), 1)

    def test_timeout(self):
        """A server that never answers fails the lookup after the timeout,
        with no delayed call left behind."""
        self.server.hold = True
        d = self.lookup("k1")
        self.clock.advance(JWKS_TIMEOUT)
        self.failureResultOf(d, KeyUnavailable)
        self.assertEqual(self.warnings()[0]["reason"], "timed out after 10s")

    def test_client_raising(self):
        """A client that raises at once is a logged load failure, and the
        next fetch (after the cooldown) still happens."""

        class Broken:
            calls = 0

            def request(self, *args, **kwargs):
                self.calls += 1
                raise ValueError("bad URL")

        broken = Broken()
        keys = RemoteKeys(
            URL, "ES256", broken, self.clock, cache_duration=900, cooldown=10
        )
        self.failureResultOf(keys.lookup("k1"), KeyUnavailable)
        self.assertEqual(self.warnings()[0]["reason"], "ValueError: bad URL")
        self.clock.advance(10)
        self.failureResultOf(keys.lookup("k1"), KeyUnavailable)
        self.assertEqual(broken.calls, 2)
