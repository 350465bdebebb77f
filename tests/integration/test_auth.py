"""JWT validation end to end over loopback: keys and tokens from the busgw
command line, a bus protecting every endpoint with the service default,
and a JWK set fetched from a loopback key server."""

import contextlib
import io
import json
import os

from twisted.internet.defer import inlineCallbacks
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from busd.cli import main
from busd.config.load import parse_config
from busd.testing import JSONBackend
from tests.integration._util import client, serve, start_gateway


def busgw(*argv):
    """Run the busgw command line in-process; its standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    assert code == 0, code
    return out.getvalue().strip()


class AuthLoopbackTests(TestCase):
    def setUp(self):
        self.keys = self.mktemp()
        busgw(
            "keys",
            "generate",
            "--alg",
            "ES256",
            "--kid",
            "central-1",
            "--out",
            self.keys,
        )
        self.key = os.path.join(self.keys, "central-1.key.pem")
        self.jwks = os.path.join(self.keys, "central-1.jwks.json")
        self.client = client(self)

    def token(self, roles):
        return busgw(
            "token",
            "--key",
            self.key,
            "--kid",
            "central-1",
            "--aud",
            "bus-FW-0042",
            "--iss",
            "central",
            "--sub",
            "ops",
            "--roles",
            roles,
            "--ttl",
            "60s",
        )

    @inlineCallbacks
    def start(self, validator):
        backend, _ = yield serve(
            self,
            JSONBackend(
                {"/v": (200, {"fuel": 70}), "/o": (200, {"line": "FW"})}
            ),
        )
        raw = {
            "version": 3,
            "extra_config": {"busgw/auth": {"validator": validator}},
            "endpoints": [
                {
                    "endpoint": "/status",
                    "backend": [{"host": [backend], "url_pattern": "/v"}],
                },
                {
                    "endpoint": "/line",
                    "backend": [{"host": [backend], "url_pattern": "/o"}],
                    "extra_config": {"busgw/auth": {"public": True}},
                },
            ],
        }
        base = yield start_gateway(self, parse_config(raw).config)
        return base

    @inlineCallbacks
    def fetch(self, url, token=None):
        headers = {"Authorization": ["Bearer " + token]} if token else None
        resp = yield self.client.get(url, headers=headers)
        body = yield resp.content()
        return resp.code, json.loads(body)

    def validator(self, **over):
        options = {
            "alg": "ES256",
            "jwk_local_path": self.jwks,
            "issuer": "central",
            "audience": ["bus-FW-0042"],
            "roles": ["fleet-reader"],
        }
        options.update(over)
        return options

    @inlineCallbacks
    def test_bus_protected_by_default(self):
        """401 without a token, 200 with one from busgw token, 403 without
        the role; the public endpoint and /__health need no token."""
        base = yield self.start(self.validator())
        code, body = yield self.fetch(base + "/status")
        self.assertEqual(
            (code, body), (401, {"error": "missing token", "status": 401})
        )
        code, body = yield self.fetch(
            base + "/status", self.token("fleet-reader")
        )
        self.assertEqual((code, body), (200, {"fuel": 70}))
        code, body = yield self.fetch(base + "/status", self.token("driver"))
        self.assertEqual(
            (code, body), (403, {"error": "insufficient scope", "status": 403})
        )
        code, body = yield self.fetch(base + "/line")
        self.assertEqual((code, body), (200, {"line": "FW"}))
        code, body = yield self.fetch(base + "/__health")
        self.assertEqual((code, body["status"]), (200, "ok"))

    @inlineCallbacks
    def test_jwk_url_over_loopback(self):
        """The JWK set is fetched once from a key server with the gateway's
        own client; tokens verify against it."""
        with open(self.jwks, "rb") as handle:
            served = JSONBackend({"/jwks.json": (200, json.load(handle))})
        keys, _ = yield serve(self, served)
        base = yield self.start(
            self.validator(
                jwk_local_path=None,
                jwk_url=keys + "/jwks.json",
                disable_jwk_security=True,
            )
        )
        for _ in range(2):
            code, _ = yield self.fetch(
                base + "/status", self.token("fleet-reader")
            )
            self.assertEqual(code, 200)
        self.assertEqual(len(served.requests), 1)

    @inlineCallbacks
    def test_jwks_unavailable(self):
        """A key server that fails: 401, the failure is logged as a
        warning, and the gateway goes on serving."""
        events = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        keys, _ = yield serve(self, JSONBackend({}))
        base = yield self.start(
            self.validator(
                jwk_local_path=None,
                jwk_url=keys + "/jwks.json",
                disable_jwk_security=True,
            )
        )
        code, body = yield self.fetch(
            base + "/status", self.token("fleet-reader")
        )
        self.assertEqual((code, body["error"]), (401, "invalid token"))
        code, _ = yield self.fetch(base + "/line")
        self.assertEqual(code, 200)
        warned = [
            e
            for e in events
            if e["log_level"] == LogLevel.warn
            and e["log_namespace"] == "busd.auth.remote"
        ]
        self.assertEqual(len(warned), 1)
        self.assertEqual(warned[0]["reason"], "HTTP status 404")

    @inlineCallbacks
    def test_bus_over_https(self):
        """Over HTTPS: 401 without a token, 200 with a token from busgw
        token, 403 without the role; a client without the CA is refused."""
        from twisted.internet.ssl import Certificate, trustRootFromCertificates
        from twisted.web.client import BrowserLikePolicyForHTTPS

        from busd.testing_tls import make_pki, ssl_listen

        pki = make_pki(self.mktemp())
        backend, _ = yield serve(self, JSONBackend({"/v": (200, {"fuel": 70})}))
        raw = {
            "version": 3,
            "extra_config": {"busgw/auth": {"validator": self.validator()}},
            "endpoints": [
                {
                    "endpoint": "/status",
                    "backend": [{"host": [backend], "url_pattern": "/v"}],
                }
            ],
        }
        base = yield start_gateway(
            self, parse_config(raw).config, ssl_listen(pki.server)
        )
        self.assertTrue(base.startswith("https://"))
        ca = Certificate.loadPEM(pki.ca.cert_pem)
        self.client = client(
            self, BrowserLikePolicyForHTTPS(trustRootFromCertificates([ca]))
        )
        code, _ = yield self.fetch(base + "/status")
        self.assertEqual(code, 401)
        code, body = yield self.fetch(base + "/status", self.token("fleet-reader"))
        self.assertEqual((code, body), (200, {"fuel": 70}))
        code, _ = yield self.fetch(base + "/status", self.token("driver"))
        self.assertEqual(code, 403)
        refused = client(self).get(base + "/status")
        error = yield self.assertFailure(refused, Exception)
        self.assertIn("certificate verify failed", repr(error.reasons))


class InsecureBackendsTests(TestCase):
    @inlineCallbacks
    def test_jwks_still_verified_with_insecure_backends(self):
        """client_tls.allow_insecure_connections (for self-signed backends)
        does not let a key server with an untrusted certificate in: a token
        signed with its forged key is refused."""
        import time

        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec

        from busd.auth.sign import public_jwk
        from busd.testing_tls import make_pki, server_options

        evil_pki = make_pki(self.mktemp(), ca_name="untrusted CA")
        evil = ec.generate_private_key(ec.SECP256R1())
        keys, _ = yield serve(
            self,
            JSONBackend({"/jwks.json": (200, {"keys": [public_jwk(evil, "k1")]})}),
            tls=server_options(evil_pki.server),
        )
        backend, _ = yield serve(self, JSONBackend({"/v": (200, {"secret": 1})}))
        raw = {
            "version": 3,
            "client_tls": {"allow_insecure_connections": True},
            "extra_config": {
                "busgw/auth": {
                    "validator": {
                        "alg": "ES256",
                        "jwk_url": keys + "/jwks.json",
                        "issuer": "central",
                        "audience": ["bus"],
                    }
                }
            },
            "endpoints": [
                {
                    "endpoint": "/status",
                    "backend": [{"host": [backend], "url_pattern": "/v"}],
                }
            ],
        }
        base = yield start_gateway(self, parse_config(raw).config)
        forged = jwt.encode(
            {"iss": "central", "aud": "bus", "sub": "m", "exp": int(time.time()) + 60},
            evil,
            algorithm="ES256",
            headers={"kid": "k1"},
        )
        resp = yield client(self).get(
            base + "/status", headers={"Authorization": ["Bearer " + forged]}
        )
        yield resp.content()
        self.assertEqual(resp.code, 401)
        self.flushLoggedErrors()
